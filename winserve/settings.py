"""One settings table: names, defaults, converters and help, for the CLI, the environment,
``winserve.toml`` and the docs alike.

Precedence: command line > ``WINSERVE_<NAME>`` environment variables > ``winserve.toml``
(``--config``, else inside a folder of models named on the command line or in the environment,
else next to the model, else in the current folder; one file only) > defaults. Unknown or
contradictory settings raise ``SettingsError`` with one line; the CLI turns that into exit code 2.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winserve import tokens
from winserve.errors import SettingsError

ENV_PREFIX = "WINSERVE_"
CONFIG_NAME = "winserve.toml"

Converter = Callable[[Any], Any]


def _setting(
    default: Any,
    help: str,
    convert: Converter,
    *,
    cli: str | None = None,
    positional: bool = False,
    metavar: str | None = None,
    repeat: bool = False,
) -> Any:
    return field(
        default=default,
        metadata={
            "help": help,
            "convert": convert,
            "cli": cli,
            "positional": positional,
            "metavar": metavar,
            "repeat": repeat,  # a list: the option may be given several times
        },
    )


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _int_in(low: int, high: int) -> Converter:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected a whole number, got {value!r}")
        try:
            number = int(str(value).strip()) if not isinstance(value, int) else value
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low} to {high}, got {number}")
        return number

    convert.__name__ = "int"
    return convert


def _float_in(low: float, high: float) -> Converter:
    def convert(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"expected a number from {low:g} to {high:g}, got {number:g}")
        return number

    convert.__name__ = "float"
    return convert


def to_path(value: Any) -> Path | None:
    if value is None or str(value).strip() == "":
        return None
    return Path(str(value)).expanduser()


def to_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value.strip()


def to_factory(value: Any) -> str:
    text = to_text(value)
    if text and (text.count(":") != 1 or not all(text.split(":"))):
        raise ValueError(f"expected package.module:callable, got {text!r}")
    return text


def to_sha256(value: Any) -> str:
    text = to_text(value).lower()
    if text and (len(text) != 64 or any(c not in "0123456789abcdef" for c in text)):
        raise ValueError("expected 64 hexadecimal digits")
    return text


_SWAP_WHEN = re.compile(r"^agree\s*>=\s*([0-9]*\.?[0-9]+)\s*(%?)$")


def to_swap_when(value: Any) -> str:
    """``swap_when``: "always", or "agree>=" and a share in (0, 1] (or a percentage with
    "%"), given back as "always" or "agree>=0.95" (issue 26, the checked swap)."""
    cleaned = value.strip().lower() if isinstance(value, str) else ""
    if cleaned == "always":
        return cleaned
    found = _SWAP_WHEN.match(cleaned)
    if found is None:
        raise ValueError(f'expected "always" or "agree>=" and a share such as 0.95, got {value!r}')
    share = float(found.group(1)) / (100 if found.group(2) else 1)
    if not 0 < share <= 1:
        raise ValueError(f"expected a share above 0 and at most 1 after agree>=, got {value!r}")
    return f"agree>={share:g}"


def to_names(value: Any) -> tuple[str, ...]:
    """Host names: a TOML list, or text separated by commas (command line, environment)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a list of names, got {value!r}")
    names = tuple(i.strip().lower() for i in items if i.strip())
    for name in names:
        if any(c.isspace() or c in "/@?#" for c in name):
            raise ValueError(f"expected a host name without scheme, path or port, got {name!r}")
    return names


def to_type_names(value: Any) -> tuple[str, ...]:
    """Python type names (module.Name): a TOML list, or text separated by commas (the
    environment; the command line, where the option may also be repeated)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"expected a list of type names, got {value!r}")
    names = [part.strip() for item in items for part in item.split(",") if part.strip()]
    for name in names:
        if "." not in name or not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"expected a type name such as package.module.Name, got {name!r}")
    return tuple(dict.fromkeys(names))


def _one_of(*choices: str) -> Converter:
    """One of ``choices``, case-insensitive: "expected off or onnx, got 'x'" otherwise."""

    def convert(value: Any) -> str:
        text = to_text(value).lower()
        if text not in choices:
            raise ValueError(f"expected {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")
        return text

    convert.__name__ = "str"
    return convert


COMPILE_CHOICES = ("off", "onnx")


def to_device(value: Any) -> str:
    """cpu, cuda or cuda:N (issue 24)."""
    text = to_text(value).lower()
    kind, colon, number = text.partition(":")
    gpu = number.isascii() and number.isdigit() and len(number) <= 3
    if not (text in ("cpu", "cuda") or (kind == "cuda" and colon and gpu)):
        raise ValueError(f"expected cpu, cuda or cuda:N (a GPU's number), got {value!r}")
    return text


to_device.__name__ = "str"
to_compile = _one_of(*COMPILE_CHOICES)
BACKENDS = ("local", "ray")
to_backend = _one_of(*BACKENDS)


def to_workers(value: Any) -> int:
    """A number of replicas, or ``auto`` (0): Ray Serve scales between 1 and max_workers."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return 0
    number: int = _int_in(1, 64)(value)
    return number


to_workers.__name__ = "int"


def to_log_level(value: Any) -> str:
    text = to_text(value).upper()
    if text not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError(f"expected debug, info, warning or error, got {value!r}")
    return text


@dataclass(frozen=True)
class Settings:
    """Every setting winserve has. Field metadata is the table the CLI and docs are built from."""

    model: Path | None = _setting(
        None,
        "Model file to serve (joblib, pickle, skops, .onnx, PyTorch .pt2/.pt/.pth or Keras "
        ".keras), an MLflow model folder (one "
        "with an MLmodel file), or a folder of models: each file (and MLflow folder) in it "
        "is served under its file name. Without one, the built-in demo model.",
        to_path,
        positional=True,
        metavar="MODEL",
    )
    factory: str = _setting(
        "",
        "Build the model by calling package.module:callable instead of loading a file; "
        "it returns any object with predict().",
        to_factory,
        cli="--factory",
        metavar="MODULE:CALLABLE",
    )
    config: Path | None = _setting(
        None,
        f"Settings file (default: {CONFIG_NAME} inside a folder of models given as model, "
        "else next to the model, else in the current folder; only one is read).",
        to_path,
        cli="--config",
        metavar="FILE",
    )
    host: str = _setting(
        "127.0.0.1",
        "Address to listen on. 127.0.0.1 is this PC only; 0.0.0.0 makes the "
        "server reachable from the network.",
        to_text,
        cli="--host",
        metavar="ADDRESS",
    )
    port: int = _setting(
        8000,
        "TCP port; 0 picks a free one (the console prints it).",
        _int_in(0, 65535),
        cli="--port",
    )
    threads: int = _setting(
        32,
        "Web server threads answering requests at once. Each waiting request holds one, and "
        "only requests that wait together can share a model call, so keep it well above 8.",
        _int_in(1, 256),
        cli="--threads",
    )
    max_connections: int = _setting(
        400,
        "Most connections open at once. When all are taken, the one sending its request "
        "slowest makes room for a new one. On Windows at most 500 (select() watches 512 "
        "sockets).",
        _int_in(8, 100_000),
        cli="--max-connections",
    )
    max_connections_per_address: int = _setting(
        64,
        "Most connections open at once from one address (IPv6: one /64); more are closed at "
        "once. Raise it when many people reach winserve through one proxy.",
        _int_in(1, 100_000),
        cli="--max-connections-per-address",
    )
    header_timeout: float = _setting(
        10.0,
        "Seconds a client has to send a request's headers (from connecting, or from the "
        "request's first byte); slower connections get 408 and are closed.",
        _float_in(1, 3600),
        cli="--header-timeout",
        metavar="SECONDS",
    )
    min_upload_rate_kb: float = _setting(
        10.0,
        "Slowest a request body may arrive, in KB per second averaged over the upload, after "
        "a first header_timeout seconds of grace; slower connections get 408 and are closed. "
        "Answers are never cut (0: no minimum).",
        _float_in(0, 1_000_000),
        cli="--min-upload-rate-kb",
        metavar="KB",
    )
    workers: int = _setting(
        1,
        "Model replicas, each a process of its own holding the model. With backend ray, "
        "auto lets Ray Serve add replicas under load, up to max_workers.",
        to_workers,
        cli="--workers",
    )
    backend: str = _setting(
        "local",
        "Where the model replicas run: local (processes on this PC) or ray (a Ray Serve "
        "deployment on the Ray cluster at ray_address; Linux, pip install 'ray[serve]').",
        to_backend,
        cli="--backend",
        metavar="NAME",
    )
    ray_address: str = _setting(
        "auto",
        "With backend ray: the cluster to use. auto: the one `ray start` runs on this "
        "machine (or RAY_ADDRESS); HOST:PORT: the cluster whose head is there (this machine "
        "must be one of its nodes: `ray start --address HOST:PORT`); local: start a Ray of "
        "winserve's own and stop it at exit. Ray's ports run code for anyone who reaches "
        "them: keep them on a trusted network.",
        to_text,
        cli="--ray-address",
        metavar="ADDRESS",
    )
    max_workers: int = _setting(
        4,
        "With workers = auto and backend ray: the most replicas Ray Serve may scale to.",
        _int_in(1, 256),
        cli="--max-workers",
    )
    ray_cpus: float = _setting(
        1.0,
        "With backend ray: the CPUs each replica reserves on its Ray node (0 packs any number "
        "of replicas on a node).",
        _float_in(0, 256),
        cli="--ray-cpus",
        metavar="CPUS",
    )
    timeout: float = _setting(
        30.0,
        "Seconds a prediction may take (queueing included) before the caller gets 504 "
        "and a stuck replica is restarted.",
        _float_in(0.05, 3600),
        cli="--timeout",
        metavar="SECONDS",
    )
    load_timeout: float = _setting(
        300.0,
        "Seconds the model may take to load in a new replica.",
        _float_in(1, 86400),
        cli="--load-timeout",
        metavar="SECONDS",
    )
    browser: bool = _setting(
        True, "Open the web page in a browser once the model is ready.", to_bool, cli="--browser"
    )
    max_batch_rows: int = _setting(
        256,
        "Most rows one model call may carry when concurrent requests are merged.",
        _int_in(1, 1_000_000),
        cli="--max-batch-rows",
    )
    max_batch_wait_ms: float = _setting(
        0.0,
        "Milliseconds a free replica waits for more requests to merge (0: none).",
        _float_in(0, 1000),
        cli="--max-batch-wait-ms",
        metavar="MS",
    )
    max_batch_mb: float = _setting(
        64.0,
        "Most megabytes of tensors and images one model call may carry when requests are merged.",
        _float_in(0.001, 4096),
        cli="--max-batch-mb",
        metavar="MB",
    )
    max_queue: int = _setting(
        512,
        "Requests that may wait for a replica; more get 503 at once.",
        _int_in(1, 1_000_000),
        cli="--max-queue",
    )
    max_rows: int = _setting(
        10_000,
        "Most rows one request may carry (413 above).",
        _int_in(1, 10_000_000),
        cli="--max-rows",
    )
    max_body_mb: float = _setting(
        20.0,
        "Largest request body in megabytes (413 above).",
        _float_in(0.001, 4096),
        cli="--max-body-mb",
        metavar="MB",
    )
    max_text_length: int = _setting(
        10_000,
        "Longest text value accepted in a text column (400 above).",
        _int_in(1, 100_000_000),
        cli="--max-text-length",
    )
    max_csv_mb: float = _setting(
        100.0,
        "Largest CSV file the page accepts for scoring, in megabytes (413 above).",
        _float_in(0.001, 65536),
        cli="--max-csv-mb",
        metavar="MB",
    )
    max_csv_rows: int = _setting(
        1_000_000,
        "Most rows a CSV file scored on the page may have.",
        _int_in(1, 100_000_000),
        cli="--max-csv-rows",
    )
    keep_results_minutes: float = _setting(
        60.0,
        "How long scored CSV files stay downloadable after their job ends.",
        _float_in(0.0, 10_080),
        cli="--keep-results-minutes",
        metavar="MINUTES",
    )
    max_jobs_mb: float = _setting(
        2048.0,
        "Most disk space, in megabytes, that CSV scoring may use (files being scored and "
        "results kept for download); when it is full, new uploads get 503.",
        _float_in(0.001, 16_777_216),
        cli="--max-jobs-mb",
        metavar="MB",
    )
    jobs_path: Path | None = _setting(
        None,
        "Folder for CSV scoring's uploads and results (default: jobs in the per-user cache); "
        "an upload is refused with 503 when this folder's disk has too little free space.",
        to_path,
        cli="--jobs-path",
        metavar="FOLDER",
    )
    token: str = _setting(
        "",
        "Require this token for the API (Authorization: Bearer …) and the web page. Empty: "
        "no token.",
        to_text,
        cli="--token",
        metavar="TOKEN",
    )
    token_file: Path | None = _setting(
        None,
        "Read the token from the first line of this file (keeps it out of process lists).",
        to_path,
        cli="--token-file",
        metavar="FILE",
    )
    tokens_file: Path | None = _setting(
        None,
        "Named tokens, one line per caller, that 'winserve token add NAME [--owner]' writes "
        "(default: tokens.toml in the per-user data folder). Like the token setting, any line "
        "makes every caller need a token; the log and the monitor page name who called. An "
        "owner token may do everything, a user token predict, score files and use the page.",
        to_path,
        cli="--tokens-file",
        metavar="FILE",
    )
    require_token_on_lan: bool = _setting(
        False,
        "Refuse to listen on the network without a token.",
        to_bool,
        cli="--require-token-on-lan",
    )
    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "More host names, comma-separated, the server answers to (the Host header), beside "
        "localhost, 127.0.0.1 and [::1], and on the network this machine's names and "
        "addresses: e.g. an intranet alias or a reverse proxy's name; .example.org allows "
        "its subdomains. "
        '"*" allows any name, which lets any web page reach the server by DNS rebinding '
        "(unsafe).",
        to_names,
        cli="--allowed-hosts",
        metavar="NAMES",
    )
    default_model: str = _setting(
        "",
        "With a folder of models: the one the bare routes (/predict, /model, /invocations, "
        "the page at /) answer for. Without it, they do only when the folder holds one model.",
        to_text,
        cli="--default-model",
        metavar="NAME",
    )
    watch: bool = _setting(
        True,
        "Watch the model file (or the folder of models): a changed file is loaded into new "
        "replicas beside the old ones and serves once its sample prediction passed; a new "
        "file is loaded, a removed one unloaded. --no-watch serves what was loaded at start.",
        to_bool,
        cli="--watch",
    )
    watch_seconds: float = _setting(
        2.0,
        "Seconds between looks at the model files; a file counts once it has not changed "
        "for one such interval, so a file still being copied is never loaded.",
        _float_in(0.1, 3600),
        cli="--watch-seconds",
        metavar="SECONDS",
    )
    swap_when: str = _setting(
        "always",
        "Before a changed file's new version serves, it answers the reference sample and the "
        "prediction log's recent inputs beside the serving version, and the agreement is "
        "reported (console, /health, the page): a classifier's row agrees on its label, a "
        "regressor's value within half the serving version's standard deviation on these "
        'rows. "always" swaps whatever it is; '
        '"agree>=0.95" keeps the old version serving when fewer rows agree (the owner may '
        "still swap, on the page or with POST /v2/repository/models/NAME/load).",
        to_swap_when,
        cli="--swap-when",
        metavar="RULE",
    )
    model_sha256: str = _setting(
        "",
        "Serve the model file only if its SHA-256 is this (checked before the file is loaded).",
        to_sha256,
        cli="--model-sha256",
        metavar="HEX",
    )
    trust: tuple[str, ...] = _setting(
        (),
        "Types a .skops model file may hold beyond the scikit-learn, NumPy and SciPy classes "
        "winserve trusts, as named when winserve refuses the file: --trust once per name, "
        "comma-separated in the environment, a list in winserve.toml. Only for code you "
        "know: loading the file runs it.",
        to_type_names,
        cli="--trust",
        metavar="TYPE",
        repeat=True,
    )
    strict_versions: bool = _setting(
        False,
        "Refuse a model saved with another scikit-learn version instead of warning.",
        to_bool,
        cli="--strict-versions",
    )
    compile: str = _setting(
        "off",
        "onnx: at load, convert the scikit-learn model with skl2onnx and answer from "
        "onnxruntime (a forest: one row in microseconds, not milliseconds), but only once it "
        "answered at least 1,000 probe rows as scikit-learn does (same predictions, "
        "probabilities within 1e-6); else scikit-learn answers and the console says why. "
        "Needs skl2onnx and onnxruntime (pip install '.[onnx]' in winserve's folder). off: "
        "scikit-learn answers.",
        to_compile,
        cli="--compile",
        metavar="RUNTIME",
    )
    device: str = _setting(
        "cpu",
        "Where PyTorch and ONNX models run: cpu, cuda (one replica on each visible NVIDIA GPU "
        "when workers is 1; more workers: replica i on GPU i mod their count) or cuda:N (that "
        "GPU). Needs a CUDA build of torch, or onnxruntime-gpu; without a GPU the model fails "
        "to load, saying why. Other models run on the CPU.",
        to_device,
        cli="--device",
        metavar="DEVICE",
    )
    intra_op_threads: int = _setting(
        0,
        "Threads one call of a PyTorch or ONNX tensor model may use in each replica. 0: the "
        "cores divided by the replicas (a table ONNX graph: one). Lower it when the machine "
        "is shared: threads that wait for a busy core cost CPU time. For other models, the "
        "OpenMP threads of a call (HistGradientBoosting, LightGBM, XGBoost); 0: one.",
        _int_in(0, 1024),
        cli="--intra-op-threads",
    )
    in_process: bool = _setting(
        False,
        "Run the model inside the web process (debugging only: no crash isolation).",
        to_bool,
        cli="--in-process",
    )
    request_log: Path | None = _setting(
        None,
        "Also append one JSON line per request (time, id, endpoint, status, rows, latency) "
        "to this file; past 50 MB it becomes FILE.1 and a new one starts.",
        to_path,
        cli="--request-log",
        metavar="FILE",
    )
    # on by default since its cost is within 5 % of throughput (issue 26): with the writer a
    # process of its own at the lowest priority, bench/predlog.py gave 1.00-1.03x the req/s
    # and 0.97-0.99x the web CPU per request at c=32 (11 runs each way: 1.04x and 0.99x;
    # bench/RESULTS.md); with the writer a thread it was 0.73-1.06x and 1.14-1.43x
    log: bool = _setting(
        True,
        "Keep a prediction log: each prediction request's time, model, version, route, caller "
        "address, latency, status, inputs and outputs, in an SQLite file written in the "
        "background by a process of its own (a request never waits for it; when it falls "
        "behind, entries are dropped and counted in /metrics). On by default; --no-log turns "
        "it off.",
        to_bool,
        cli="--log",
    )
    log_path: Path | None = _setting(
        None,
        "The prediction log's SQLite file (default: one file per model or folder served, "
        "in predictions under the per-user data folder).",
        to_path,
        cli="--log-path",
        metavar="FILE",
    )
    log_days: int = _setting(
        30,
        "Days the prediction log keeps an entry; older ones are deleted in the background.",
        _int_in(1, 36_500),
        cli="--log-days",
        metavar="DAYS",
    )
    log_max_mb: float = _setting(
        1024.0,
        "Most disk space, in megabytes, the prediction log's file may use; past it the "
        "oldest entries are deleted in the background.",
        _float_in(1, 16_777_216),
        cli="--log-max-mb",
        metavar="MB",
    )
    log_inputs: bool = _setting(
        True,
        "Store each prediction's inputs in the prediction log; false keeps the row counts "
        "and outputs only.",
        to_bool,
        cli="--log-inputs",
    )
    log_level: str = _setting(
        "INFO",
        "Console log level: debug, info, warning or error.",
        to_log_level,
        cli="--log-level",
        metavar="LEVEL",
    )

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_csv_bytes(self) -> int:
        return int(self.max_csv_mb * 1024 * 1024)

    @property
    def max_jobs_bytes(self) -> int:
        return int(self.max_jobs_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        """What the HTTP layer lets through: the larger of a request body and a CSV upload."""
        return max(self.max_body_bytes, self.max_csv_bytes + 64 * 1024)

    @property
    def is_demo(self) -> bool:
        return self.model is None and not self.factory

    @property
    def is_folder(self) -> bool:
        """A folder of models (not one MLflow model folder, which holds an MLmodel file)."""
        return (
            self.model is not None
            and self.model.is_dir()
            and not (self.model / "MLmodel").is_file()
        )

    @property
    def binds_lan(self) -> bool:
        return self.host not in {"127.0.0.1", "localhost", "::1"}


def table() -> list[dataclasses.Field[Any]]:
    return list(dataclasses.fields(Settings))


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _convert(name: str, value: Any, source: str) -> Any:
    spec = {f.name: f for f in table()}[name]
    try:
        return spec.metadata["convert"](value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{source}: {name}: {exc}") from None


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    names = {f.name for f in table()}
    values: dict[str, Any] = {}
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name not in names:
            raise SettingsError(
                f"unknown environment setting {key} "
                f"(known: {', '.join(env_name(n) for n in sorted(names))})"
            )
        values[name] = _convert(name, raw, f"environment {key}")
    return values


def _from_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc}") from None
    section = raw.get("winserve", raw)
    names = {f.name for f in table()} - {"config"}
    values: dict[str, Any] = {}
    for key, value in section.items():
        name = key.replace("-", "_")
        if name not in names:
            raise SettingsError(f"{path}: unknown setting {key!r}")
        converted = _convert(name, value, str(path))
        if isinstance(converted, Path) and not converted.is_absolute():
            converted = path.parent / converted
        values[name] = converted
    return values


def _find_config(explicit: Path | None, model: Path | None, cwd: Path) -> Path | None:
    """The one settings file read: ``--config``; else, for a folder of models, the one inside
    it (where it sits beside the model files, as it does beside one file served alone: serving
    the folder reads the file that serving one of its models reads); else the one next to the
    model; else the current folder's."""
    if explicit is not None:
        return explicit if explicit.is_absolute() else cwd / explicit
    candidates = [cwd / CONFIG_NAME]
    if model is not None:
        model = model if model.is_absolute() else cwd / model
        candidates.insert(0, model.parent / CONFIG_NAME)
        if model.is_dir() and not (model / "MLmodel").is_file():
            candidates.insert(0, model / CONFIG_NAME)
    return next((c for c in candidates if c.is_file()), None)


def load(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge the sources in precedence order and check the result."""
    cwd = cwd or Path.cwd()
    cli_values = {k: _convert(k, v, "command line") for k, v in (cli or {}).items()}
    env_values = _from_env(os.environ if env is None else env)
    early = {**env_values, **cli_values}
    config = _find_config(early.get("config"), early.get("model"), cwd)
    file_values = _from_file(config) if config is not None else {}
    merged: dict[str, Any] = {**file_values, **env_values, **cli_values}
    if config is not None:
        merged["config"] = config
    model = merged.get("model")
    if isinstance(model, Path) and not model.is_absolute():
        merged["model"] = cwd / model
    token_file = merged.get("token_file")
    if isinstance(token_file, Path):
        merged["token"] = _read_token(token_file if token_file.is_absolute() else cwd / token_file)
    merged["tokens_file"] = tokens_path(merged.get("tokens_file"), cwd)
    settings = Settings(**merged)
    check(settings)
    return settings


def tokens_path(given: Path | None, cwd: Path) -> Path:
    """The tokens file: ``given`` (relative to ``cwd``), else tokens.toml in the data folder."""
    if given is None:
        return tokens.default_path()
    return given if given.is_absolute() else cwd / given


def command_tokens_path(cli: Path | None, env: Mapping[str, str], cwd: Path) -> Path:
    """The tokens file ``winserve token …`` edits: ``--tokens-file``, else WINSERVE_TOKENS_FILE,
    else ``tokens_file`` in the winserve.toml of ``cwd``, else the default (as a server started
    there would read it)."""
    if cli is None:
        cli = _from_env(env).get("tokens_file")
    if cli is None:
        config = _find_config(None, None, cwd)
        cli = _from_file(config).get("tokens_file") if config is not None else None
    return tokens_path(cli, cwd)


def _read_token(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise SettingsError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise SettingsError(f"token file {path} is empty")
    return token


def check(settings: Settings) -> None:
    if settings.model is not None and settings.factory:
        raise SettingsError("give either a model file or --factory, not both")
    if settings.model is not None and not settings.model.exists():
        raise SettingsError(f"model file not found: {settings.model}")
    if settings.default_model and not settings.is_folder:
        raise SettingsError("default_model names a model in a folder of models: give the folder")
    if settings.model_sha256 and settings.model is None:
        raise SettingsError("model_sha256 pins a model file: give the model file too")
    named = tokens.read(settings.tokens_file) if settings.tokens_file is not None else []
    if settings.require_token_on_lan and settings.binds_lan and not settings.token and not named:
        raise SettingsError(
            f"host {settings.host} makes winserve reachable from the network and "
            "require_token_on_lan is on: set a token (--token, --token-file or WINSERVE_TOKEN) "
            "or add named ones (winserve token add NAME)"
        )
    if settings.token and len(settings.token) < 8:
        raise SettingsError("the token is too short: use at least 8 characters")
    if settings.workers == 0 and settings.backend != "ray":
        raise SettingsError(
            "--workers auto lets Ray Serve scale the replicas: it needs --backend ray "
            "(on this PC, give a number of replicas)"
        )
    if settings.backend == "ray" and settings.ray_address.lower().startswith("ray://"):
        raise SettingsError(
            "ray_address: Ray Client addresses (ray://) are not supported; run winserve on a "
            "machine of the cluster (`ray start --address HEAD:6379` there) and give HEAD:6379"
        )
    if settings.backend == "ray" and not _is_ray_address(settings.ray_address):
        raise SettingsError(
            f"ray_address {settings.ray_address!r} is not an address: give auto, local or the "
            "head's HOST:PORT as `ray start --head` printed it (e.g. 192.168.1.20:6379)"
        )
    if settings.backend == "ray" and settings.in_process:
        raise SettingsError("--in-process and --backend ray exclude each other: choose one")
    if settings.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise SettingsError(
            "backend ray needs Ray Serve: pip install 'ray[serve]' (on Linux), or leave the "
            "backend at local"
        )
    if settings.in_process and settings.workers > 1:
        raise SettingsError(
            "--in-process runs one model in the web process; "
            "it cannot be combined with --workers above 1"
        )


def markdown_table() -> str:
    """The settings table for the README (a test keeps the README equal to this)."""
    lines = [
        "| setting | command line | environment | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for spec in table():
        meta = spec.metadata
        cli = meta["metavar"] if meta["positional"] else meta["cli"]
        if meta["convert"] is to_bool:
            cli = f"{cli} / --no-{cli[2:]}"
        default = spec.default
        if isinstance(default, tuple):
            default = ", ".join(default)
        shown = "" if default is None or default == "" else f"`{default}`"
        lines.append(
            f"| `{spec.name}` | `{cli}` | `{env_name(spec.name)}` | {shown} | {meta['help']} |"
        )
    return "\n".join(lines) + "\n"


def _is_ray_address(address: str) -> bool:
    """auto, local, or HOST:PORT (``[IPv6]:PORT`` too), as Ray's own parser wants it."""
    return address.lower() in ("auto", "local") or host_and_port(address) is not None


def host_and_port(address: str) -> tuple[str, int] | None:
    """A ``HOST:PORT`` (or ``[IPv6]:PORT``) address's parts; ``None`` if it is not one."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or " " in host or "/" in host or not port.isdigit():
        return None
    return (host, int(port)) if 0 < int(port) < 65536 else None
