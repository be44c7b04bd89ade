"""Everything ``run.py`` checks before Hydra starts, so that a mistake stops with one line, exit code 2
and nothing written (:func:`preflight`).

- The command line is read as Hydra reads it (:mod:`svdbench.command_line`); ``--help``, ``--cfg
  hydra`` and the like are left to Hydra.
- Each job is composed and planned (:func:`plan`): a single run, or a multirun's jobs, in Hydra's
  order (:func:`sweep_axes`, the preset's ``hydra.sweeper.params`` first, the command line's axes
  after, as Hydra's basic sweeper orders them). A grid of up to :data:`FULL_GRID` jobs is checked job
  by job; a larger one (and a sampling sweeper's ranges) at the first job and at every other value of
  each axis with the others at their first (:func:`sampled_jobs`).
- Each checked job's directory (the run directory, or the sweep directory and the job's resolved
  ``hydra.sweep.subdir``) must be its own (no two jobs share one), writable, free of links and foreign
  files where svdbench or Hydra (its log file, its output folder) write, not held by a running svdbench
  process, and not holding a completed run of another config.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import math
import os
import re
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob
from hydra.core.utils import setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from . import config as schema
from . import distributed, stop_channel
from .checkpoint import (
    CHECKPOINT,
    RunCheckpoints,
    architecture,
    check_dense_fits,
    check_position,
    dense_checkpoint_path,
)
from .command_line import CommandLine, check_hydra_flags, fail, parse_command_line, printing_line
from .data import channels_and_classes, check_files
from .dense_start import dense_digest
from .dry_run import Launch, launch_of, show_plan
from .errors import CheckpointError, InputError, one_line
from .models import build_from_config, check_model_name
from .paths import two_places
from .pipeline import Run
from .plan import RunPlan, make_plan
from .results import RESULTS_FILE
from .rundir import (
    LOCK,
    OWN_FILES,
    HydraWrites,
    RunLock,
    check_sweep_dir,
    check_writable,
    failed_job_dir,
    point_dirs,
    previous_record,
)
from .summary import summary
from .sweep_settings import check_launcher, check_report_callback, check_report_out, check_sweeper
from .workbench import resolve_device

__all__ = ["compose_config", "plan", "preflight", "sweep_axes"]

#: launchers whose jobs' locks preflight takes (the basic launcher's jobs run in this process, joblib's in
#: worker processes it starts); others (a cluster's) run jobs elsewhere, each taking its own lock
HOLDING_LAUNCHERS = ("BasicLauncher", "JoblibLauncher")
#: the longest file name (bytes) of the file systems svdbench writes to
NAME_MAX = 255
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")
#: a multirun grid of at most this many jobs is composed and checked job by job before it starts
FULL_GRID = 64


def plan(cfg: DictConfig, base: str | None = None) -> RunPlan:
    """The plan of the composed config ``cfg``: validated, the model name and device checked, the method
    built from its config and configured for the run (its starting point, the budget), a relative
    ``init_from``, ``dataset.root`` and method path (``method.architecture_from``) taken from ``base`` (the
    launch directory; default: the current one), a built-in dataset's files present
    (:func:`svdbench.data.check_files`); InputError in one line."""
    typed = schema.validate(cfg, base)
    if typed.model._target_ is None:
        check_model_name(typed.model.family, typed.model.name)
        if typed.model.kwargs:  # a key the model does not take: one line now, not after the data has loaded
            with torch.device("meta"):
                build_from_config(typed.model, 2, 1, weights=False)  # a checkpoint is the data's shape, not this
    resolve_device(typed.trainer.device)
    cls = schema.method_class(typed.method)
    try:
        method = cls(typed.method)
    except (ValueError, TypeError) as err:
        raise InputError(one_line(err)) from None
    check_skip(typed)
    planned = make_plan(typed, method, base)
    if typed.dataset._target_ is None:
        check_files(typed.dataset)
    return planned


def compose_config(
    overrides: list[str],
    config_dir: str | None = None,
    config_name: str = "config",
    hydra: bool = False,
    config_path: str | None = None,
) -> DictConfig:
    """The config Hydra composes for ``overrides`` (``config_dir``: a user config directory searched
    beside svdbench's, as ``--config-dir`` does; ``config_path``: the primary config directory instead
    of svdbench's, absolute or relative to run.py's, as ``--config-path`` does; ``hydra``: with its
    ``hydra`` node)."""
    primary = os.path.join(os.path.dirname(CONF_DIR), config_path) if config_path else CONF_DIR
    config_name = config_name.removesuffix(".yaml")  # Hydra takes --config-name with its suffix too
    name = f"{config_name}.yaml"
    if config_dir and not Path(primary, name).is_file() and Path(config_dir, name).is_file():
        primary, config_dir = os.path.abspath(config_dir), primary  # --config-name found in --config-dir, as Hydra does
    if config_dir:
        overrides = [*overrides, f"hydra.searchpath=[file://{os.path.abspath(config_dir)}]"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra)


def warn_shadowed(config_dir: Path) -> None:
    """A warning for each option of the user's ``config_dir`` (``<group>/<option>.yaml``) that svdbench's
    own conf/ also has: svdbench's is the one composed (its config directory is searched first), so the
    user's would be silently ignored. Give it another name."""
    for path in sorted(config_dir.glob("*/*.yaml")):
        group, option = path.parent.name, path.stem
        if (Path(CONF_DIR) / group / f"{option}.yaml").is_file():
            print(f"warning: {path} is not used: svdbench's own {group}/{option} has that name; name yours "
                  f"otherwise ({group}=my_{option})", file=sys.stderr)  # fmt: skip
    for path in sorted(config_dir.glob("*.yaml")):
        if (Path(CONF_DIR) / path.name).is_file():
            print(f"warning: {path} is not used: svdbench's own {path.name} has that name; name yours otherwise "
                  f"and choose it with --config-name {path.stem}_mine", file=sys.stderr)  # fmt: skip


def _sweeps_by_config(line: CommandLine) -> bool:
    """Whether the config makes the command a sweep without ``-m`` (``hydra.mode: MULTIRUN``, as the sweep
    presets set it): then it is checked as one. A config that does not compose is left to the checks after."""
    parser = OverridesParser.create()
    plain = [o for o in line.overrides if not _is_sweep(parser, o)]  # a sweep's values do not compose one run
    try:
        mode = OmegaConf.select(_compose(line, plain), "hydra.mode")
    except Exception:
        return False
    return str(mode).endswith("MULTIRUN")


def _check_config_dir(config_dir: str | None) -> None:
    """``--config-dir`` names a directory, and one place (Hydra reads a '..' after a link as text): one line."""
    if config_dir is None:
        return
    if not Path(config_dir).is_dir():
        fail(f"--config-dir {config_dir}: no such directory")
    physical = two_places(config_dir)
    if physical is not None:
        fail(f"--config-dir {config_dir} has a '..' after a link, which is {physical} for the system but "
             f"{os.path.abspath(config_dir)} for Hydra: give the path without '..'")  # fmt: skip


def _warn_other_modes_dir(line: CommandLine) -> None:
    """One warning where the command line names the directory of the other mode (``hydra.run.dir`` for a sweep,
    a preset's included; ``hydra.sweep.dir`` for a single run), which Hydra ignores without a word."""
    given = {o.lstrip("+").partition("=")[0] for o in line.overrides}
    wrong, right, what = ("hydra.run.dir", "hydra.sweep.dir", "a sweep (-m, or a preset that sweeps)") if (
        line.multirun) else ("hydra.sweep.dir", "hydra.run.dir", "a single run (no -m)")  # fmt: skip
    if wrong in given and right not in given:
        print(f"warning: {wrong} is ignored: this command is {what}; give {right}", file=sys.stderr)


def _compose(line: CommandLine, overrides: list[str]) -> DictConfig:
    """The config of ``overrides`` under ``line``'s config directories, with its ``hydra`` node: composed once
    per command line (the mode check, the first job and its job all ask for it), a copy each time."""
    key = tuple(overrides)
    if key not in line.composed:
        line.composed[key] = compose_config(
            overrides, line.config_dir, line.config_name, hydra=True, config_path=line.config_path
        )
    return copy.deepcopy(line.composed[key])


# ---------------------------------------------------------------------- the jobs of a sweep


@dataclass
class Axis:
    """One key of a sweep: its values as overrides (``key=value``); ``sampled``: a range a sampling
    sweeper draws from, represented by its lower end."""

    values: list[str]
    sampled: bool = False
    text: str = ""  # the override as given


def sweep_axes(line: CommandLine) -> list[Axis]:
    """The axes of ``line``'s multirun in Hydra's order (the basic sweeper's): the preset's
    ``hydra.sweeper.params`` first, then the command line's; a key the command line gives again keeps
    the preset's place with the command line's values. InputError for an override Hydra cannot parse."""
    parser = OverridesParser.create()
    cfg = _compose(line, [o for o in line.overrides if not _is_sweep(parser, o)])
    params = OmegaConf.to_container(cfg.hydra.sweeper, resolve=False).get("params") or {}
    axes: OrderedDict[str, Axis] = OrderedDict()
    for text in [f"{k}={v}" for k, v in params.items()] + line.overrides:
        o = parser.parse_overrides([text])[0]
        key = o.get_key_element()
        if o.is_sweep_override() and not o.is_discrete_sweep():
            axes[key] = Axis([f"{key}={v}" for v in _interval_ends(o.value(), text)], sampled=True, text=text)
        elif o.is_sweep_override():
            if key.startswith("hydra."):
                raise InputError(f"{text}: Hydra's own keys cannot be swept (one sweep directory, one job name)")
            if isinstance(o.value(), Glob):  # glob() over a config group's options, as Hydra expands it
                values = [f"{key}={v}" for v in o.value().filter(group_options(line, key.lstrip("+~")))]
            else:
                values = [f"{key}={v}" for v in o.sweep_string_iterator()]
            if not values:
                raise InputError(f"{text} sweeps no value")
            axes[key] = Axis(values)
        else:
            axes[key] = Axis([f"{key}={o.get_value_element_as_str()}"])
    return list(axes.values())


def group_options(line: CommandLine, group: str) -> list[str]:
    """The options of config group ``group`` as Hydra's ``glob()`` chooses from them: svdbench's conf/ (or
    ``--config-path``) and the registered schemas (``method/<name>``), and ``--config-dir``'s, sorted."""
    primary = os.path.join(os.path.dirname(CONF_DIR), line.config_path) if line.config_path else CONF_DIR
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=primary, version_base="1.3"):
        options = set(GlobalHydra.instance().config_loader().get_group_options(group))
    if line.config_dir:
        options |= {p.stem for p in Path(line.config_dir, *group.split("/")).glob("*.yaml")}
    return sorted(options)


def _interval_ends(interval, text: str) -> list:
    """The values a sampling sweeper can draw from ``interval`` at its two ends (a float's high end just
    below it: the end itself may be out of a half-open range such as an energy's [0, 1)); InputError for
    an interval whose low end is not below its high end."""
    low, high = interval.start, interval.end
    if not low < high:
        raise InputError(f"{text}: its low end must be below its high end")
    if "log" in (getattr(interval, "tags", None) or ()):  # Optuna's log-uniform draw: above 0 (an integer's: >= 1)
        ints = not (isinstance(low, float) or isinstance(high, float))
        if low < 1 if ints else low <= 0:
            raise InputError(f"{text}: a log range's low end must be {'at least 1' if ints else 'above 0'}")
    if isinstance(low, float) or isinstance(high, float):
        return [float(low), math.nextafter(float(high), float(low))]
    return [low, high]


def _is_range(text: str) -> bool:
    try:
        o = OverridesParser.create().parse_overrides([text])[0]
    except Exception:  # reported when the jobs are composed
        return False
    return o.is_sweep_override() and not o.is_discrete_sweep()


def _is_sweep(parser: OverridesParser, text: str) -> bool:
    try:
        return parser.parse_overrides([text])[0].is_sweep_override()
    except Exception:  # reported when the jobs are composed
        return False


def sampled_jobs(axes: list[Axis]) -> list[tuple[int, list[str]]]:
    """Jobs worth checking of a grid too large to check whole: (Hydra's job number, overrides) of the
    first job (every axis at its first value), then of every other value of each axis with the others at
    their first. The number follows the basic sweeper's order (the last axis varies fastest)."""
    sizes = [len(a.values) for a in axes]
    strides = [math.prod(sizes[i + 1 :]) for i in range(len(axes))]
    first = [a.values[0] for a in axes]
    jobs = [(0, first)]
    for i, axis in enumerate(axes):
        jobs += [(j * strides[i], [*first[:i], v, *first[i + 1 :]]) for j, v in enumerate(axis.values) if j]
    return jobs


def all_jobs(axes: list[Axis]) -> list[tuple[int, list[str]]]:
    """Every job of the grid, numbered as Hydra's basic sweeper numbers them."""
    return list(enumerate(list(p) for p in itertools.product(*(a.values for a in axes))))


# ---------------------------------------------------------------------- one job


@dataclass
class Job:
    """One job of a run or sweep, composed and planned: its overrides, its directory and what Hydra
    writes there (``hydra``: its log file, its output folder)."""

    num: int
    overrides: list[str]
    plan: RunPlan
    dir: Path
    hydra: tuple[str, ...] = field(default=())
    subdir: str = ""  # a multirun's hydra.sweep.subdir, as given
    label: str = ""  # the job's values of the sweep's axes (its overrides that vary from job to job)
    named_dir: bool = False  # a run directory of no time stamp (${now:...}): Hydra makes the very same one
    complete: bool = False  # its directory holds a completed run of its config (checked): kept, nothing to run

    @property
    def called(self) -> str:
        """``job <num> (<label>)`` in messages; ``job <num>`` where no override varies."""
        return f"job {self.num} ({self.label})" if self.label else f"job {self.num}"


def job_of(line: CommandLine, num: int, overrides: list[str], sweep_dir: str | None) -> Job:
    """Compose and plan one job; its directory is ``hydra.run.dir`` (a single run) or ``sweep_dir`` and
    the job's ``hydra.sweep.subdir`` resolved with ``hydra.job.num=num``."""
    cfg = _compose(line, overrides)
    job_cfg = copy.deepcopy(cfg)
    with open_dict(job_cfg):
        for key, value in _hydra_reads(cfg).items():  # resolved now: the job's copy has no hydra node
            OmegaConf.update(job_cfg, key, value, merge=False)
        del job_cfg["hydra"]
    planned = plan(job_cfg)  # the config's own mistakes first
    with open_dict(cfg):
        cfg.hydra.job.num = num
        if not any(o.lstrip("+").startswith("hydra.job.name=") for o in overrides):
            cfg.hydra.job.name = line.script
        name = str(cfg.hydra.job.name)
        if not _plain(name):  # its log, <name>.log, goes into the job's directory
            raise InputError(f"hydra.job.name={name!r} must be a plain name: its log file goes into the run directory")
        if len(os.fsencode(f"{name}.log")) > NAME_MAX:
            raise InputError(f"hydra.job.name is {len(os.fsencode(name))} bytes long: its log file, <name>.log, "
                             f"must fit a file name ({NAME_MAX} bytes)")  # fmt: skip
        raw = OmegaConf.to_container(cfg.hydra, resolve=False)
        for key, node in (("hydra.run.dir", raw["run"]["dir"]), ("hydra.sweep.subdir", raw["sweep"]["subdir"])):
            if isinstance(node, str) and "${hydra:" in node:  # the resolver reads the running Hydra's config
                OmegaConf.update(cfg, key, node.replace("${hydra:", "${hydra."))
    if sweep_dir is None:
        where = str(OmegaConf.select(cfg, "hydra.run.dir") or "")
        if not where.strip():  # Path("") would be the current directory
            raise InputError("the run directory is empty: give hydra.run.dir=<dir>")
        _check_dir_name("hydra.run.dir", where)
        where = Path(where)
    else:
        _check_dir_name("hydra.sweep.dir", sweep_dir)
        if time_stamped(cfg, "hydra.sweep.subdir"):
            raise InputError(f"hydra.sweep.subdir={raw['sweep']['subdir']}: a job's directory cannot depend on the "
                             "time it starts (checked and locked ahead, it would be another): put ${now:...} in "
                             "hydra.sweep.dir")  # fmt: skip
        subdir = str(OmegaConf.select(cfg, "hydra.sweep.subdir"))
        _check_dir_name("hydra.sweep.subdir", subdir)
        where = Path(sweep_dir) / subdir
    physical = two_places(where)
    if physical is not None:
        key = "hydra.run.dir" if sweep_dir is None else "hydra.sweep.dir and hydra.sweep.subdir"
        raise InputError(f"{key}: {where} has a '..' after a link, which is {physical} for the system but "
                         f"{os.path.abspath(where)} as written: give the path without '..'")  # fmt: skip
    named = sweep_dir is None and not time_stamped(cfg, "hydra.run.dir")
    names = hydra_names(raw, str(cfg.hydra.job.name))
    _check_output_subdir(raw.get("output_subdir"), names, [label for label, _ in planned.method.operating_points()])
    return Job(num, overrides, planned, where, names, str(raw["sweep"]["subdir"]), named_dir=named)


def check_skip(cfg) -> None:
    """Every ``method.skip`` pattern matches a layer (a convolution or a linear layer) of the dense model by its
    whole name (``layer1.0.conv1``, ``*.downsample.*``): a block's name (``layer1``) or a typo would leave every
    layer compressed without a word; InputError in one line. Not checked where the model cannot be built from the
    config alone (a dataset or model of one's own)."""
    patterns = list(getattr(cfg.method, "skip", None) or [])
    shape = channels_and_classes(cfg.dataset) if patterns else None
    if shape is None:
        return
    try:
        with torch.device("meta"):
            model = build_from_config(cfg.model, shape[1], shape[0], weights=False)
    except Exception:  # a model of one's own that needs real tensors: not checked here
        return
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in layers):
            inside = [n for n in layers if n.startswith(f"{p}.")]
            hint = f"; the layers in {p}: '{p}.*'" if inside else f" (its layers: {', '.join(layers[:3])}, ...)"
            raise InputError(f"method.skip: {p!r} matches no layer of {cfg.model.name} by its whole name{hint}")


def dense_architecture(cfg) -> dict[str, tuple[int, ...]] | None:
    """The names and shapes of the dense model a run of ``cfg`` builds, from its config alone (built on the meta
    device: no memory, no data loaded); None where the config does not say them (a dataset or model of one's
    own that cannot be built so)."""
    shape = channels_and_classes(cfg.dataset)
    if shape is None:
        return None
    try:
        with torch.device("meta"):
            return architecture(build_from_config(cfg.model, shape[1], shape[0], weights=False))
    except Exception:  # a model of one's own that needs real tensors: the job checks it when it loads
        return None


def _hydra_reads(cfg: DictConfig) -> dict[str, object]:
    """The job's keys that read the running Hydra's config (``${hydra:sweep.dir}``: a compare preset's
    ``init_from``), by dotted key, resolved against the ``hydra`` node composed here, as the job will see them."""
    out: dict[str, object] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not (prefix == "" and k == "hydra"):
                    walk(v, f"{prefix}{k}.")
        elif isinstance(node, str) and "${hydra:" in node:
            key = prefix[:-1]
            OmegaConf.update(cfg, key, node.replace("${hydra:", "${hydra."), merge=False)
            out[key] = OmegaConf.select(cfg, key)

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


#: what ``${now:...}`` resolves to while :func:`time_stamped` looks for it
NOW_MARK = "@svdbench-now@"


def time_stamped(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` of the composed ``cfg`` reads the clock (``${now:...}`` in any spelling, also through other
    keys): resolved on a copy with a ``now`` resolver that marks its result, Hydra's put back after."""
    copied = copy.deepcopy(cfg)
    OmegaConf.clear_cache(copied)
    OmegaConf.register_new_resolver("now", lambda *args: NOW_MARK, replace=True, use_cache=False)
    try:
        return NOW_MARK in str(OmegaConf.select(copied, key, default=""))
    except Exception:  # a key that does not resolve: reported where it is read
        return False
    finally:
        setup_globals()  # Hydra's own resolvers (now, hydra, python_version) back


def _check_dir_name(key: str, where: str) -> None:
    r"""Hydra makes a directory named ``~`` where ``key`` starts with one (no home directory), and resolves a
    ``${`` in it again when it sets up its log (an escaped ``\${``): InputError."""
    if "${" in where:
        raise InputError(f"{key}={where}: a directory name with ${{ (Hydra would resolve it again for its log): "
                         "name the directory without it")  # fmt: skip
    if where.startswith("~"):
        raise InputError(f"{key}={where}: Hydra does not expand ~ (it would make a directory named ~ here): give "
                         f"the full path, {os.path.expanduser(where)}")  # fmt: skip


def hydra_names(raw: dict, job_name: str) -> tuple[str, ...]:
    """What Hydra writes into a job's directory, from its ``hydra`` node ``raw`` (unresolved): its log file
    (``hydra.job_logging``'s file handler; default ``<job name>.log``) and its output folder
    (``hydra.output_subdir``; default ``.hydra``), a folder's name ending in ``/`` (``.hydra/``)."""
    names = []
    handler = ((raw.get("job_logging") or {}).get("handlers") or {}).get("file") or {}
    log = str(handler.get("filename") or "")
    for name in ("${hydra.job.name}", "${hydra:job.name}"):
        log = log.replace(name, job_name)
    if log:
        folder, _, file = log.rpartition("/")
        if folder not in ("${hydra.runtime.output_dir}", "${hydra:runtime.output_dir}") or not _plain(file):
            raise InputError(
                f"hydra.job_logging.handlers.file.filename={log} must be a file in the run directory "
                "(${hydra.runtime.output_dir}/<name>): svdbench writes nothing outside it"
            )
        if "${" not in file:
            names.append(file)
    subdir = raw.get("output_subdir")
    if subdir is not None:  # null: Hydra writes no folder
        if str(subdir) == "":  # Hydra would write config.yaml, hydra.yaml, overrides.yaml into the run's root
            raise InputError(f"hydra.output_subdir={subdir!r} would put Hydra's config.yaml, hydra.yaml and "
                             "overrides.yaml in the run directory itself: give a folder name (default .hydra), or "
                             "null for none")  # fmt: skip
        if not _plain(str(subdir)):
            raise InputError(f"hydra.output_subdir={subdir} must be a folder name in the run directory")
        names.append(f"{subdir}/")
    return tuple(names)


def _check_output_subdir(subdir: object, names: Sequence[str], points: Sequence[str]) -> None:
    """``hydra.output_subdir`` is none of the names svdbench or Hydra write in the run directory (results.json,
    the lock, the checkpoints, the deployed model, Hydra's log, the operating points' directories): Hydra would
    make its folder there, in the way of the run's own file (InputError in one line, before anything is written)."""
    if subdir is None:
        return
    name = str(subdir)
    log_files = [n for n in names if not n.endswith("/")]  # hydra_names: a folder's name ends in /
    reserved = {RESULTS_FILE, LOCK, *OWN_FILES, *log_files, *points}
    if name in reserved or re.fullmatch(r"stage_.*\.pt|deployed\..*", name):
        what = "an operating point's directory" if name in points else "a file svdbench or Hydra writes there"
        raise InputError(f"hydra.output_subdir={name} is {what}: give Hydra's folder another name (default .hydra)")


def _plain(name: str) -> bool:
    """A name of one file or folder (no path, not ``.`` or ``..``)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def check_job_dir(job: Job, made_by: Sequence[Path] = ()) -> dict | None:
    """The job's starting point (``init_from``) exists (unless it lies in one of ``made_by``, the directories
    of the sweep's jobs: an earlier job makes it), and its directory is its own:
    :meth:`svdbench.pipeline.Run.check_dir`, not held by a running svdbench process (checked by rank 0 only
    under torchrun: rank 0 holds it while the others start), and (``resume=false``) holding no foreign
    results.json nor an operating point another process holds; with ``resume=true`` its completed result
    when it holds this very run (None: work to do), InputError when it holds another config's."""
    run = Run(job.plan, job.dir)
    run.check_dir(job.hydra)
    start = job.plan.init_from
    made = start is not None and any(Path(os.path.realpath(start)).is_relative_to(d) for d in made_by)
    if start is not None and not made and not os.path.lexists(dense_checkpoint_path(start)):  # a FIFO: read below
        raise InputError(f"init_from: no dense checkpoint at {dense_checkpoint_path(start)}")
    if start is not None and not made:
        want = dense_architecture(job.plan.cfg)
        if want is not None:  # another model's weights (or no weights) would fail in every job: before the first
            check_dense_fits(start, want)
    if distributed.is_main():  # under torchrun rank 0 takes the lock while the other ranks are still starting
        RunLock.check_free(job.dir)
    if not job.plan.cfg.resume:
        previous = previous_record(job.dir)
        for point in point_dirs(job.dir, previous) if previous is not None and distributed.is_main() else ():
            RunLock.check_free(point)  # the replaced run's points are removed: none may be in use
        return None
    return run.completed_result()


# ---------------------------------------------------------------------- the check


def preflight(argv: list[str]) -> list[str]:
    """Compose and validate the config before Hydra starts: exit code 2 with one line on stderr for
    any mistake, nothing written. Every checked job (a single run, or a multirun's jobs: see the
    module) has its directory checked too. ``--cfg job`` prints the config the run (or the sweep's
    first job) would record (what runs: resolved, the method configured for its starting point and
    budget) and exits; ``--help``, ``--cfg hydra`` and the like are left to Hydra. Returns ``argv`` with a
    time-stamped run or sweep directory (``${now:...}``) pinned to the one checked (:func:`pinned`)."""
    check_hydra_flags(argv[1:])
    try:
        line = parse_command_line(argv[1:], Path(argv[0]).stem or "run")
    except ValueError:
        check_printing(argv)
        return argv
    _check_config_dir(line.config_dir)
    if line.config_dir is not None:
        warn_shadowed(Path(line.config_dir))
    line.multirun = line.multirun or _sweeps_by_config(line)
    try:
        axes = sweep_axes(line) if line.multirun else [Axis([o]) for o in line.overrides]
    except InputError as err:
        fail(str(err))
    except Exception as err:  # an override Hydra cannot parse, a preset that does not compose
        fail(schema.explain(err))
    sampled = [a.text for a in axes if a.sampled]
    if not line.multirun:
        sampled = [o for o in line.overrides if _is_range(o)]
    if sampled and not line.multirun:
        fail(f"{sampled[0]} is a range to sample: run a sweep (-m) with a sampling sweeper (+sweep=optuna_pareto)")
    grid = math.prod(len(a.values) for a in axes)
    whole = line.multirun and not sampled and grid <= FULL_GRID
    numbered = all_jobs(axes) if whole or not line.multirun else sampled_jobs(axes)
    try:
        first = _compose(line, numbered[0][1])
        if sampled and "optuna" not in str(OmegaConf.select(first, "hydra.sweeper._target_", default="")).lower():
            fail(f"{sampled[0]}: the basic sweeper cannot sweep a range; list the values (key=a,b,c) or use a "
                 "sampling sweeper (+sweep=optuna_pareto)")  # fmt: skip
        sweep_dir = str(OmegaConf.select(first, "hydra.sweep.dir")) if line.multirun else None
        launcher = str(OmegaConf.select(first, "hydra.launcher._target_", default="") or "")
        jobs = [job_of(line, num, overrides, sweep_dir) for num, overrides in numbered]
        for job in jobs:
            job.label = " ".join(o for o, a in zip(job.overrides, axes, strict=True) if len(a.values) > 1)
    except InputError as err:
        fail(str(err))
    except Exception as err:
        fail(schema.explain(err))
    check_report_callback(OmegaConf.select(first, "hydra.callbacks.report"))
    if line.print_job:
        what = "this run"
        if line.multirun:
            what = f"the first of the sweep's jobs ({' '.join(jobs[0].overrides) or 'no override'})"
        print(f"# the config {what} records in results.json: resolved, the method configured for its start and budget")
        print(OmegaConf.to_yaml(jobs[0].plan.config), end="")
        raise SystemExit(0)
    if line.multirun:
        check_launcher(launcher)
        check_sweeper(OmegaConf.select(first, "hydra.sweeper"), OmegaConf.select(first, "hydra.launcher"))
        trials = OmegaConf.select(first, "hydra.sweeper.n_trials") if sampled else None
        trials = trials if isinstance(trials, int) else None
        check_sweep(sweep_dir, jobs, checked_whole=whole, sampled=bool(sampled), trials=trials)
        check_starts(jobs, in_order=launcher.endswith("BasicLauncher"))
        named = [(f"job {job.num}'s directory", job.dir) for job in jobs]
        check_report_out(OmegaConf.select(first, "hydra.callbacks.report"), sweep_dir, named)
        if time_stamped(first, "hydra.sweep.dir"):
            argv = pinned(argv, line, "hydra.sweep.dir", Path(sweep_dir))
        _warn_other_modes_dir(line)  # once the command is found good: a refusal stays its one line
        if line.show_plan:
            count = len(jobs) if whole else (trials if trials is not None else grid)
            labelled = [(f"{job.num}{' (' + job.label + ')' if job.label else ''}", job) for job in jobs][:count]
            _show_plan(labelled, sweep_dir, count, launch_of(OmegaConf.select(first, "hydra.launcher")))
        if launcher.endswith("JoblibLauncher"):  # before its workers start: they can be told to stop
            stop_channel.open_channel()
        if whole and launcher.endswith(HOLDING_LAUNCHERS):
            for job in jobs:  # every job's lock, before Hydra writes into its directory: the basic launcher runs
                try:  # the jobs in this process, joblib's in workers whose parent this process is
                    RunLock.hold(job.dir)
                except InputError as err:
                    RunLock.release_held(remove_made=True)  # the locks taken so far, and the directories they made
                    fail(f"{job.called}: {err}")
            if not launcher.endswith("BasicLauncher"):
                RunLock.lend_to_workers()
        return argv
    if not jobs[0].named_dir and distributed.is_main():
        argv = pinned(argv, line, "hydra.run.dir", jobs[0].dir)
        jobs[0].named_dir = True
    try:
        done = check_job_dir(jobs[0])
    except (InputError, CheckpointError) as err:  # a checkpoint's name holding no checkpoint: named, kept
        fail(str(err))
    if done is not None:  # nothing to do: say so, leave the directory as it is
        point = f" (an operating point of {done['point_of']})" if isinstance(done.get("point_of"), str) else ""
        print(f"run directory {jobs[0].dir} already holds a completed run of this config{point}\n"
              f"{summary(done, jobs[0].dir)}")  # fmt: skip
        raise SystemExit(0)
    try:
        check_writable(jobs[0].dir, jobs[0].hydra)
    except InputError as err:
        fail(str(err))
    _warn_other_modes_dir(line)
    if line.show_plan:
        state = directory_state(jobs[0])
        if state:
            print(state)
        _show_plan([("", jobs[0])])
    if distributed.is_main() and jobs[0].named_dir:  # the run's lock, before Hydra writes into the directory
        HydraWrites.take(jobs[0].dir, jobs[0].hydra)
        try:
            RunLock.hold(jobs[0].dir)
        except InputError as err:
            fail(str(err))
    return argv


def check_starts(jobs: Sequence[Job], in_order: bool) -> None:
    """No job starts from the model of a job that has not run before it: one run after another (``in_order``,
    the basic launcher), only from an earlier job's (a compare preset's arms after its dense job); side by
    side (a parallel launcher), from none. One line otherwise (every such job would fail for want of it)."""
    made = {Path(os.path.realpath(j.dir)): j for j in jobs}  # links resolved, as a start may be given
    for job in jobs:
        start = Path(os.path.realpath(job.plan.init_from)) if job.plan.init_from is not None else None
        maker = next((j for d, j in made.items() if start is not None and start.is_relative_to(d)), None)
        if maker is None or (in_order and maker.num < job.num):
            continue
        if in_order:
            fail(f"{job.called} starts from the model of {maker.called}, which runs "
                 "after it: list the dense job first")  # fmt: skip
        fail(f"{job.called} starts from job {maker.num}'s model ({job.plan.init_from}), which a "
             "parallel launcher would start at the same time: run this sweep with the default launcher (one job "
             "after another)")  # fmt: skip


def check_printing(argv: list[str]) -> None:
    """Before Hydra prints its help, info or config: the command line's overrides compose (one line, exit code 2,
    instead of Hydra's traceback); ``--hydra-help`` (Hydra's own help, of no config) takes none."""
    line = printing_line(argv[1:], Path(argv[0]).stem or "run")
    chosen = line is not None and (line.config_dir or line.config_path or line.config_name != "config")
    if line is None or not (line.overrides or chosen):
        return
    _check_config_dir(line.config_dir)
    if "--hydra-help" in argv[1:] and line.overrides:
        fail("--hydra-help prints Hydra's own help, of no config: give it no overrides (--help shows svdbench's)")
    try:
        _compose(line, line.overrides)
    except Exception as err:
        fail(schema.explain(err))


def pinned(argv: list[str], line: CommandLine, key: str, where: Path) -> list[str]:
    """``argv`` with the time-stamped directory ``key`` (``${now:...}``) fixed to ``where``, the one preflight
    computed and checked, as the last override: Hydra would read the clock again (a second later, another
    directory: an empty one left behind) and two commands started in the same second (or minute, by the
    pattern) would share it. A directory of that name that exists already is refused: a time-stamped
    directory is a new one."""
    if where.exists():
        fail(f"{key}: the time-stamped directory {where} exists already (a command started in the same second, or "
             f"minute or day by its pattern): a time-stamped directory is a new one; to resume or replace what is "
             f"there, give {key}={where}; else a finer pattern (%f: microseconds)")  # fmt: skip
    at = len(argv)
    if line.overrides:  # right after the overrides (Hydra reads them as one run of arguments)
        at = max(i for i, a in enumerate(argv) if a == line.overrides[-1]) + 1
    return [*argv[:at], f"{key}={override_value(str(where))}", *argv[at:]]


def override_value(text: str) -> str:
    """``text`` as a Hydra override's value: as it is where Hydra's grammar reads it so, else quoted."""
    if re.fullmatch(r"[\w./-]+", text, re.ASCII):
        return text
    quoted = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text)
    return "'" + quoted.replace("${", "\\${") + "'"


def directory_state(job: Job) -> str | None:
    """What ``--plan`` says of the run directory's content: the run it replaces (``resume=false``) or the
    cut run it resumes; None for a new directory."""
    try:
        record = previous_record(job.dir)
    except InputError:
        return None
    if record is None:
        return None
    if not job.plan.cfg.resume:
        return (f"replaces the {record.get('method')} run ({record.get('status')}) in {job.dir}: its results, "
                "checkpoints, deployed model and operating points are removed first")  # fmt: skip
    if not (job.dir / CHECKPOINT).is_file():
        return None
    plan = job.plan
    stages = [s for s in (plan.pretrain, *plan.before_compress, plan.finetune) if s is not None]
    checkpoints = RunCheckpoints(job.dir, plan.config, plan.method.name)
    try:  # as the run reads it (form, config, start, position): one line, not a traceback or a resume the run refuses
        checkpoints.load(start=dense_digest(plan.init_from) if plan.init_from else None)
        latest = check_position(checkpoints.latest, job.dir / CHECKPOINT, {s.name: s.epochs for s in stages})
    except (CheckpointError, InputError) as err:
        fail(str(err))
    return (f"resumes the cut run in {job.dir} at stage {latest['stage']}, epoch {latest['train']['epoch'] + 1} "
            "(the time below is the whole run's)")  # fmt: skip


def _show_plan(
    jobs: Sequence[tuple[str, Job]], sweep_dir: str | None = None, count: int | None = None, launch: Launch = Launch(1)
) -> None:
    """``--plan``: print the jobs' plans and exit 0 (:func:`svdbench.dry_run.show_plan`), nothing written."""
    try:
        kept = [job.dir for _, job in jobs if job.complete]
        show_plan([(label, job.plan, job.dir) for label, job in jobs], sweep_dir, count, launch, kept)
    except InputError as err:
        fail(str(err))
    print("# a plan only: nothing was run or written (drop --plan to run it)")
    raise SystemExit(0)


def check_sweep(
    sweep_dir: str | None, jobs: list[Job], checked_whole: bool, sampled: bool = False, trials: int | None = None
) -> None:
    """A multirun's sweep directory can be made and written (no link where Hydra writes); no two jobs
    share a directory (a ``hydra.sweep.subdir`` that does not tell them apart, e.g. ``seed${seed}`` in a
    sweep over the learning rate; for a sampling sweeper, whose draws are not known yet: a subdir without
    any interpolation); and, where every job was composed (``checked_whole``), each job's directory is its
    own (:func:`check_job_dir`)."""
    try:
        check_sweep_dir(sweep_dir or "")
        check_writable(sweep_dir or "", ("multirun.yaml", "optimization_results.yaml"), "sweep directory")
    except InputError as err:
        fail(str(err))
    seen: dict[Path, Job] = {}
    for job in jobs:
        other = seen.setdefault(Path(os.path.realpath(job.dir)), job)
        if other is not job and (not sampled or "${" not in job.subdir):
            fail(
                f"hydra.sweep.subdir={job.subdir} puts {other.called} and {job.called} "
                f"in one directory {job.dir}: name each job's own (the default ${{hydra.job.num}}, "
                "or a key the sweep varies)"
            )
    _check_nesting([j for j in jobs if not sampled or "${" not in j.subdir])
    base = Path(os.path.abspath(sweep_dir or ""))
    if not checked_whole:
        if trials is not None and not jobs[0].plan.cfg.resume and jobs[0].subdir == "${hydra.job.num}":
            _check_leftovers(
                base,
                [base / str(i) for i in range(trials)]
                + [failed_job_dir(base, i, base / str(i)) for i in range(trials)],
            )
        return
    for job in jobs:
        try:
            done = check_job_dir(job, made_by=[d for d in seen if d != Path(os.path.realpath(job.dir))])
            check_writable(job.dir, job.hydra)  # Hydra writes its log and .hydra even for a job complete
        except (InputError, CheckpointError) as err:
            fail(f"{job.called}: {err}")
        job.complete = done is not None
    if not jobs[0].plan.cfg.resume:  # the sweep replaces the one before: none of that one's runs may stay
        _check_leftovers(base, list(seen) + [failed_job_dir(base, j.num, j.dir) for j in jobs])


def _check_nesting(jobs: Sequence[Job]) -> None:
    """No job's directory lies inside another job's (its run directory, or one of its operating points'): the
    other run would take it for its own point, or a leftover, and Hydra would write its files there. One line
    naming both jobs, before the first starts."""
    dirs = [(Path(os.path.realpath(j.dir)), j) for j in jobs]
    for inner, job in dirs:
        for outer, other in dirs:
            if other is job or inner == outer or not inner.is_relative_to(outer):
                continue
            first = inner.relative_to(outer).parts[0]
            points = [label for label, _ in other.plan.method.operating_points()]
            where = f"operating point {first}" if first in points else "directory"
            where = f"{where} of job {other.num}"
            its = ", ".join(filter(None, (other.label, str(outer))))
            fail(
                f"{job.called} would run in {inner}, inside the {where} ({its}): "
                "each job needs a directory of its own beside the others; set hydra.sweep.subdir so that none lies "
                "inside another"
            )


def _check_leftovers(base: Path, made: Sequence[Path]) -> None:
    """A ``resume=false`` sweep into ``base`` that makes the directories ``made`` (and operating points below
    them) finds no other run there, at any depth: a report of the sweep would count it."""
    left = sorted(p.parent for p in base.rglob(RESULTS_FILE)
                  if p.is_file() and not any(p.parent == d or d in p.parents for d in made))  # fmt: skip
    if left:
        first = os.path.relpath(left[0], base) + (", ..." if len(left) > 1 else "")
        fail(
            f"resume=false: {base} holds {len(left)} run(s) this sweep does not replace ({first}), which a report "
            "of it would count: remove them or use another hydra.sweep.dir"
        )
