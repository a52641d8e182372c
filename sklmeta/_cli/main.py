"""The command line's options: argparse only. Running them is :mod:`sklmeta._cli.run`."""

import argparse
import sys
import textwrap
from pathlib import Path

from .. import __version__
from .scenarios import ALGORITHMS, DEFAULT_SCENARIOS, SCENARIOS


def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    return parse


positive_int = _int_at_least(1)


def _build_parser():
    prog = "python -m sklmeta" if sys.argv[0].endswith("__main__.py") else "sklmeta"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Few-shot learning with meta-learners against the baselines a "
                    "practitioner would fit on the same support sets, scored on identical "
                    "episodes. Without arguments: `compare` on the default scenarios "
                    f"({', '.join(DEFAULT_SCENARIOS)}), a few minutes on 2 CPU cores.",
    )
    parser.add_argument("--version", action="version", version=f"sklmeta {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    scenarios = "\n".join(
        textwrap.fill(f"{name:<17} {s.help}", 79, initial_indent="  ", subsequent_indent=" " * 20)
        for name, s in SCENARIOS.items())
    cmp = commands.add_parser(
        "compare", help="meta-train, then score the meta-learners and the baselines (the "
                        "default command)",
        description=textwrap.fill(
            "Meta-train the meta-learners on a scenario's training tasks, then score them, "
            "MAML's random start and the baselines on the same test episodes. Prints a "
            "markdown table (mean [95% CI] over episodes) and, per shot count, a verdict on "
            "the best meta-learner against the best baseline computed from the paired "
            "scores (inconclusive when the CI includes zero); writes <scenario>.csv (every "
            "episode's score) and <scenario>.png to --out.", 79),
        epilog=f"scenarios:\n{scenarios}\n\n" + textwrap.fill(
            "Ctrl-C stops the run: it prints the rows done, writes their scores and exits "
            "with status 130.", 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("--scenario", nargs="+", choices=list(SCENARIOS),
                     default=list(DEFAULT_SCENARIOS), metavar="NAME",
                     help=f"one or more of: {', '.join(SCENARIOS)} "
                          f"(default: {' '.join(DEFAULT_SCENARIOS)})")
    cmp.add_argument("--algorithms", nargs="+", choices=list(ALGORITHMS),
                     default=list(ALGORITHMS), metavar="NAME",
                     help=f"meta-learners to train: {', '.join(ALGORITHMS)} (default: all; "
                          "protonet is for classification only)")
    cmp.add_argument("--shots", nargs="+", type=positive_int, metavar="K",
                     help="shot counts (support samples per class; per task for sinusoid) "
                          "(default: 1 5, sinusoid 5 10)")
    cmp.add_argument("--n-way", type=_int_at_least(2), metavar="N",
                     help="classes per episode (default: 3 for digits, 2 otherwise; "
                          "shared-structure and cross-dataset need 2)")
    cmp.add_argument("--epochs", type=positive_int, metavar="N",
                     help="meta-training budget, max_epochs (default: 60 shared-structure, "
                          "40 otherwise; early stopping may stop sooner). The sinusoid's "
                          "pretrained baseline gets a quarter of it, at most 10")
    cmp.add_argument("--episodes", type=_int_at_least(2), default=100, metavar="N",
                     help="test episodes per shot count (default: 100)")
    cmp.add_argument("--seed", type=_int_at_least(0), default=0, metavar="N",
                     help="seeds the tasks, networks and episodes (default: 0)")
    cmp.add_argument("--out", default="sklmeta-results", metavar="DIR",
                     help="output folder for the CSV and PNG files (default: ./sklmeta-results)")
    cmp.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                     help="torch device of the meta-learners (default: cpu; the baselines "
                          "run on the CPU)")
    cmp.add_argument("--automl", action="store_true",
                     help="also fit AutoMetaClassifier / AutoMetaRegressor over the table's "
                          "meta-learners and baselines (it chooses on held-out training "
                          "tasks or classes, then refits its pick) and score its pick "
                          "beside them")
    cmp.add_argument("--threads", type=positive_int, metavar="N",
                     help="torch and BLAS threads (default: 1; the tensors are tiny and more "
                          "threads only add overhead)")
    return parser, cmp


def _check_args(parser, args):
    """Errors no argparse type can see; each names its option (exit status 2)."""
    if args.device == "cuda":
        import torch  # only here: --help and the other checks do not need it

        if not torch.cuda.is_available():
            parser.error("argument --device: CUDA is not available to torch here; use cpu")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"argument --out: {args.out!r} exists and is not a folder")
    for name in args.scenario:
        s = SCENARIOS[name]
        if args.n_way is not None and args.n_way not in s.n_way:
            allowed = ("it is a regression scenario, without classes" if not s.n_way else
                       f"it takes {' or '.join(map(str, sorted(s.n_way)))}")
            parser.error(f"argument --n-way: {args.n_way} does not fit scenario {name}: "
                         f"{allowed}")
        if args.shots is not None and max(args.shots) > s.max_shots:
            parser.error(f"argument --shots: at most {s.max_shots} for scenario {name}; got "
                         f"{max(args.shots)}")


def main(argv=None):
    """Run the command line; return the exit status (0, 2 for bad options, 130 on Ctrl-C).

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``. Without a command, ``compare``
        is run, on the default scenarios when no arguments are given.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    default = not argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["compare", *argv]
    parser, compare_parser = _build_parser()
    args = parser.parse_args(argv)
    args.scenario = list(dict.fromkeys(args.scenario))  # in order, once each
    args.algorithms = list(dict.fromkeys(args.algorithms))
    _check_args(compare_parser, args)

    from . import run  # torch, skorch and the estimators: only once there is work to do

    return run.run_all(args, default)
