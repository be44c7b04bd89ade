"""What ``run.py``'s command line holds, read as Hydra reads it (:func:`parse_command_line`): the overrides,
the options that change what runs (``-m``, ``--config-*``, ``--cfg job``, ``--plan``), long options by
unambiguous abbreviation, and one line (exit code 2) for an option svdbench does not run
(:func:`fail`)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

__all__ = ["CommandLine", "check_hydra_flags", "fail", "parse_command_line"]


@dataclass
class CommandLine:
    """What preflight needs of ``run.py``'s arguments."""

    overrides: list[str]
    config_dir: str | None = None
    config_path: str | None = None  # --config-path: the primary config directory instead of svdbench's conf/
    config_name: str = "config"
    multirun: bool = False
    print_job: bool = False  # --cfg job (with or without --resolve): print the run's config, run nothing
    show_plan: bool = False  # --plan: print what each job will do, its estimated time and config; run nothing
    script: str = "run"  # the job name Hydra gives a run (its log: <script>.log)
    #: configs composed for this command line, by overrides (:func:`svdbench.preflight._compose`)
    composed: dict = field(default_factory=dict, repr=False, compare=False)


def parse_command_line(args: list[str], script: str = "run") -> CommandLine:
    """The overrides and the options preflight understands; ValueError for another option
    (``--help``, ``--cfg``, ...: nothing is run, it is left to Hydra)."""
    line = CommandLine([], script=script)
    it = iter(args)
    chunks, last_was_override = 0, False  # Hydra's argparse takes the overrides as one run of arguments
    for a in it:
        if a == "--":  # argparse's end of the options: what follows are overrides, as Hydra reads them
            rest = list(it)
            option = next((r for r in rest if r.startswith("-")), None)
            if option is not None:
                fail(f"{option}: an option after --, where only overrides go: give the options before --")
            if rest and chunks:
                fail(f"{rest[0]}: the overrides must come together, before or after the options (Hydra reads no "
                     "override after an option that follows overrides)")  # fmt: skip
            line.overrides += rest
            break
        if not a.startswith("-"):
            chunks += not last_was_override
            last_was_override = True
            if chunks > 1:
                fail(f"{a}: the overrides must come together, before or after the options (Hydra reads no "
                     "override after an option that follows overrides)")  # fmt: skip
        else:
            last_was_override = False
        flag, eq, value = a.partition("=")
        flag = _long_option(flag) if a.startswith("--") else flag
        a = flag + eq + value
        if flag == "--experimental-rerun":
            fail("--experimental-rerun is not supported: it unpickles a file (code could run); rerun a run with its "
                 "command line (its .hydra/overrides.yaml)")  # fmt: skip
        if flag in HYDRA_PRINTS:
            _refuse_plan_with(args, a)
            raise ValueError(a)  # --help, --info, ...: Hydra prints and exits, nothing runs
        if flag in ("--cfg", "-c"):
            shown = value if eq else next(it, "")
            if shown != "job":
                _refuse_plan_with(args, f"{flag} {shown}".strip())
                raise ValueError(a)  # --cfg hydra / all: Hydra's
            line.print_job = True
        elif a == "--resolve" and line.print_job:
            pass
        elif a == "--plan":
            line.show_plan = True
        elif flag in ("--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp"):
            value = value if eq else next(it, "")
            if flag in ("--config-dir", "-cd"):
                line.config_dir = value
            elif flag in ("--config-path", "-cp"):
                line.config_path = value
            else:
                line.config_name = value
        elif a in ("-m", "--multirun"):
            line.multirun = True
        elif a in ("-r", "--run"):
            pass  # a single run, the default
        elif a.startswith("-"):
            fail(f"unknown option {a}: python run.py --help lists them (overrides are key=value)")
        else:
            line.overrides.append(a)
    return line


#: run.py's long options: Hydra's and svdbench's --plan
LONG_OPTIONS = ("--help", "--hydra-help", "--version", "--cfg", "--resolve", "--package", "--run", "--multirun",
                "--shell-completion", "--config-path", "--config-name", "--config-dir", "--experimental-rerun",
                "--info", "--plan")  # fmt: skip
#: Hydra's options that print and exit: nothing runs, they are left to Hydra
HYDRA_PRINTS = ("--help", "-h", "--hydra-help", "--version", "--info", "-i", "--package", "-p", "--shell-completion",
                "-sc")  # fmt: skip


def _refuse_plan_with(args: list[str], printing: str) -> None:
    """One line (exit code 2) where ``--plan`` (or its abbreviation) comes with a Hydra option that prints and
    runs nothing: Hydra would end in its usage text, or print and drop ``--plan`` without a word."""
    options = args[: args.index("--")] if "--" in args else args
    if any(a.startswith("--") and _long_option(a.partition("=")[0]) == "--plan" for a in options):
        fail(f"--plan does not go with {printing}: each prints and runs nothing; give one of them")


def _long_option(flag: str) -> str:
    """``flag`` as the long option it abbreviates, as Hydra's argparse reads it (``--multi``: ``--multirun``);
    an ambiguous abbreviation is one line."""
    if flag in LONG_OPTIONS:
        return flag
    matches = [o for o in LONG_OPTIONS if o.startswith(flag)]
    if len(matches) > 1:
        fail(f"{flag} is ambiguous: {', '.join(matches)}")
    return matches[0] if matches else flag


def check_hydra_flags(args: list[str]) -> None:
    """Hydra's options that do nothing, or end in its traceback, without their partner: ``--resolve`` and
    ``--package`` belong to ``--cfg`` (``--resolve`` also to ``--help``), ``--shell-completion`` needs
    ``install=``/``uninstall=``/``query=``; one line (exit code 2) instead."""
    flags = {a.partition("=")[0] for a in args if a.startswith("-")}
    shows = bool(flags & {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"})
    if "--resolve" in flags and not shows:
        fail("--resolve only goes with --cfg or --help (it prints the config resolved)")
    if flags & {"--package", "-p"} and not flags & {"--cfg", "-c"}:
        fail("--package only goes with --cfg (it prints one package of the config)")
    if flags & {"--shell-completion", "-sc"} and not any(a.split("=")[0] in ("install", "uninstall", "query")
                                                         for a in args if not a.startswith("-")):  # fmt: skip
        fail("--shell-completion needs install=bash, uninstall=bash or query=bash (Hydra's tab completion)")
    if flags & {"--shell-completion", "-sc"} and any(a.startswith("query=") for a in args) and "COMP_LINE" not in \
            os.environ:  # fmt: skip
        fail("--shell-completion query=... is what the shell's completion calls (it reads $COMP_LINE): install the "
             "completion with -sc install=bash")  # fmt: skip


#: options that take the next argument as their value (or after "="); --info's value is optional
VALUED = ("--cfg", "-c", "--package", "-p", "--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp",
          "--shell-completion", "-sc", "--experimental-rerun")  # fmt: skip
INFO_TOPICS = ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath")


def printing_line(args: list[str], script: str = "run") -> CommandLine | None:
    """The command line of a Hydra option that prints and runs nothing (``--help``, ``--info``, ``--cfg hydra``):
    its overrides and config options, to be composed before Hydra prints (an override Hydra cannot take would
    end in its traceback); None where nothing is to be composed (``--version``, ``--shell-completion``, a sweep)."""
    flags = {a.partition("=")[0] for a in args if a.startswith("-")}
    if flags & {"--version", "--shell-completion", "-sc"}:
        return None
    if flags & {"-m", "--multirun"}:
        shown = sorted(flags & {"--help", "-h", "--info", "-i", "--cfg", "-c", "--hydra-help"})
        fail(f"{shown[0] if shown else 'this option'} prints and runs nothing, of one run: drop -m (and give single "
             "values; --plan shows a sweep's jobs)")  # fmt: skip
    line = CommandLine([], script=script)
    it = iter(args)
    for a in it:
        flag, eq, value = a.partition("=")
        if flag in VALUED and not eq:
            value = next(it, "")
        if flag in ("--config-dir", "-cd"):
            line.config_dir = value
        elif flag in ("--config-path", "-cp"):
            line.config_path = value
        elif flag in ("--config-name", "-cn"):
            line.config_name = value
        elif flag in ("--info", "-i") and not eq:
            following = next(it, None)
            if following is not None and following not in INFO_TOPICS:
                line.overrides.append(following)
        elif not a.startswith("-"):
            line.overrides.append(a)
    return line


def fail(message: str) -> None:
    print(f"config error: {message}", file=sys.stderr)
    raise SystemExit(2) from None
