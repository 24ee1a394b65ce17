"""How this task would be started with ShinkaEvolve itself (evomcp reads its settings, never runs it)."""

import argparse

import yaml
from shinka.core import EvolutionConfig, ShinkaEvolveRunner
from shinka.database import DatabaseConfig
from shinka.launch import LocalJobConfig

TASK_SYS_MSG = """You tune value() so that it returns the target exactly. (The run script's system message.)"""


def main(config_path):
    with open(config_path) as f:
        config = yaml.safe_load(f)
    config["evo_config"]["task_sys_msg"] = TASK_SYS_MSG
    runner = ShinkaEvolveRunner(evo_config=EvolutionConfig(**config["evo_config"]),
                                job_config=LocalJobConfig(eval_program_path="evaluate.py", time="00:00:20"),
                                db_config=DatabaseConfig(num_islands=2))
    runner.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config_path", type=str, default="shinka.yaml")
    main(parser.parse_args().config_path)
