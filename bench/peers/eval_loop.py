from scorer import score_program, sys  # the bench writes scorer.py's text in place of this line


def main():
    import json
    import time

    sys.dont_write_bytecode = True  # every framework evaluates a new file: compile it every time
    out, rounds, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    score_program(paths[0])  # warm: numpy's lazy parts, the import machinery
    walls = {path: [] for path in paths}
    cpus = {path: [] for path in paths}
    valid = []
    for _ in range(rounds):
        for path in paths:
            w, c = time.perf_counter(), time.process_time()
            score, correct, _ = score_program(path)
            walls[path].append(time.perf_counter() - w)
            cpus[path].append(time.process_time() - c)
            valid.append(correct)

    def typical(times):  # each program's fastest round (a shared machine slows some), median over programs
        best = sorted(min(t) for t in times.values())
        return best[len(best) // 2]

    everything = [t for ts in walls.values() for t in ts]
    with open(out, "w") as f:
        json.dump({"wall": typical(walls), "cpu": typical(cpus), "mean_wall": sum(everything) / len(everything),
                   "n": len(everything), "valid": sum(valid) / len(valid)}, f)


if __name__ == "__main__":
    main()
