# A toy task: make value() close to 3.0.

# EVOLVE-BLOCK-START
def value():
    return 1.0
# EVOLVE-BLOCK-END
