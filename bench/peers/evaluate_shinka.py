from scorer import log_evaluation, score_program, time  # the bench writes scorer.py's text in place of this line


def main():
    import argparse
    import json
    import os

    parser = argparse.ArgumentParser()
    parser.add_argument("--program_path", required=True)
    parser.add_argument("--results_dir", required=True)
    args = parser.parse_args()
    started = time.monotonic()
    score, correct, error = score_program(args.program_path)
    log_evaluation(started, correct)
    os.makedirs(args.results_dir, exist_ok=True)
    with open(os.path.join(args.results_dir, "metrics.json"), "w") as f:
        json.dump({"combined_score": score, "public": {"sum_of_radii": score}, "private": {}}, f)
    with open(os.path.join(args.results_dir, "correct.json"), "w") as f:
        json.dump({"correct": correct, "error": error}, f)


if __name__ == "__main__":
    main()
