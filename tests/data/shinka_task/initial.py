# A toy task in ShinkaEvolve's layout: make value() land on the target kept in helper.py.

# EVOLVE-BLOCK-START
SCALE = 0.5


def value(seed):
    return SCALE * 3.0
# EVOLVE-BLOCK-END


def run_experiment(seed=1):
    return value(seed)
