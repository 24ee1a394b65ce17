# A toy task in OpenEvolve's layout: two integer settings, scored in two stages.

# EVOLVE-BLOCK-START
STEPS = 3
WIDTH = 4
# EVOLVE-BLOCK-END


def run():
    return STEPS, WIDTH
