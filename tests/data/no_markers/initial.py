# A program written without EVOLVE-BLOCK markers.


def generate(seed):
    return 1.0 + 0.25 * (seed % 2)


def run_experiment(seeds):
    return [generate(s) for s in seeds]
