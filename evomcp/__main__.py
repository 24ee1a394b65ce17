"""`python -m evomcp` and the `evomcp` command."""


def entry() -> None:
    try:
        from evomcp.server.cli import main
    except KeyboardInterrupt:  # Ctrl-C while Python was still importing: nothing had begun
        raise SystemExit(130) from None
    main()


if __name__ == "__main__":
    entry()
