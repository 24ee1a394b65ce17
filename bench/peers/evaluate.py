from scorer import log_evaluation, score_program, time  # the bench writes scorer.py's text in place of this line


def evaluate(program_path):
    started = time.monotonic()
    score, correct, error = score_program(program_path)
    log_evaluation(started, correct)
    result = {"combined_score": score, "correct": correct}
    if error:
        result["error"] = error
    return result
