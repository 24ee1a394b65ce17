from scorer import log_evaluation, score_program, time  # the bench writes scorer.py's text in place of this line


def evaluate(program_path):
    started = time.monotonic()
    score, correct, error = score_program(program_path)
    log_evaluation(started, correct)
    return {"combined_score": score, "validity": 1.0 if correct else 0.0}
