"""What the console tells the person who started winserve: what is served, and where (for a
folder of models, rendered from the data plane's one health summary, issue 23)."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from winserve import __version__, tokens
from winserve.load_progress import size_text
from winserve.model_info import ModelInfo

if TYPE_CHECKING:  # check.py imports this module: not the registry and the web side with it
    from winserve.dataplane import HealthSummary
    from winserve.settings import Settings

WIDTH = 10


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (no packets are sent)."""
    found: set[str] = set()
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            address = str(sockaddr[0])
            if not address.startswith("127."):
                found.add(address)
    except OSError:
        pass
    return sorted(found)


def urls(host: str, port: int) -> tuple[str, list[str]]:
    """The local URL to open, and the LAN URLs when bound beyond this machine."""
    wildcard = host in {"0.0.0.0", "::", ""}
    local_host = "127.0.0.1" if wildcard else host
    shown = f"[{local_host}]" if ":" in local_host else local_host
    local = f"http://{shown}:{port}/"
    lan = [f"http://{a}:{port}/" for a in lan_addresses()] if wildcard else []
    return local, lan


def line(label: str, text: str) -> str:
    return f"  {label:<{WIDTH}}{text}"


def _shorten(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", … ({len(items)} in all)" if len(items) > limit else "")


def describe_model(info: ModelInfo) -> list[str]:
    features = [f"{f.name}" + ("" if f.kind == "number" else f" ({f.kind})") for f in info.features]
    lines = [line("model", f"{info.model_type}, {info.task.replace('_', ' ')}")]
    lines.append(line("runtime", info.runtime))  # scikit-learn, onnxruntime, compiled or not
    if info.text_input:
        lines.append(line("inputs", f"one text per row (as {info.feature_names[0]!r} in a table)"))
    elif info.features:
        lines.append(line("inputs", f"{info.n_features}: {_shorten(features)}"))
    else:
        lines.append(line("inputs", "not declared by the model (rows are passed as given)"))
    lines.extend(_missing(info))
    outputs = ", ".join(info.outputs)
    if info.n_outputs > 1:
        outputs += f" ({info.n_outputs} values per row)"
    lines.append(line("outputs", outputs))
    if info.classes:
        lines.append(line("classes", _shorten([str(c) for c in info.classes])))
    if info.sha256:
        lines.append(line("file", info.source))
        lines.append(line("sha256", info.sha256))
    if info.extra.get("code_file"):
        lines.append(line("code", f"{info.extra['code_file']} (run before loading the model)"))
    if info.saved_with_sklearn:
        lines.append(
            line("sklearn", f"saved with {info.saved_with_sklearn}, running {info.sklearn_version}")
        )
    lines.extend(line("WARNING", w) for w in info.warnings)
    return lines


def _missing(info: ModelInfo) -> list[str]:
    """What the model said at load about missing values (an empty cell, a JSON null)."""
    refused = [f.name for f in info.features if f.required]
    accepted = [f.name for f in info.features if f.missing == "accepted"]
    if not info.features or (not refused and not accepted):
        return []
    if not refused:
        return [line("missing", "taken in every input (the model decides what they mean)")]
    if not accepted:
        return [line("missing", "refused in every input (every value is required)")]
    return [line("missing", f"refused in {_shorten(refused)}; taken in {_shorten(accepted)}")]


def access(settings: Settings) -> str:
    """Who may call, for the banner's ``access`` line (issue 26, a new user's finding: the
    console never said that the tokens file was in force, so every caller needed a token and
    the person at the console did not know why)."""
    path = settings.tokens_file
    try:
        named = tokens.read(path) if path is not None else []
    except tokens.TokensError as exc:  # read at start already; changed since
        return f"{exc}"
    owners = sum(x.role == tokens.OWNER for x in named)
    parts = []
    if named:
        roles = ", ".join(
            f"{n} {role}{'s' if n != 1 else ''}"
            for n, role in ((owners, tokens.OWNER), (len(named) - owners, tokens.USER))
            if n
        )
        word = "token" if len(named) == 1 else "tokens"
        parts.append(f"{len(named)} named {word} ({roles}) in {path}")
    if settings.token:
        parts.append("the token setting (an owner)")
    if not parts:
        return "no token: anyone who can open the address (named tokens: winserve token add NAME)"
    return " and ".join(parts) + "; every caller needs a token"


def _size(info: ModelInfo) -> str:
    """The model file's size, before its load time (issue 24: a big model's wait explained)."""
    return f"{size_text(info.file_size)} " if info.file_size else ""


def ready(info: ModelInfo, host: str, port: int, where: str, allowed: str = "") -> str:
    """The console's "serving" block; ``where``: where the replicas run (``serving_where``);
    ``allowed``: who may call (``access``)."""
    title = f"winserve {__version__} is serving {info.name}"
    if info.demo:
        title += " (the built-in DEMO model: give a model file to serve your own)"
    local, lan = urls(host, port)
    lines = [
        title,
        *describe_model(info),
        line("loaded", f"{_size(info)}in {info.load_seconds:.2f} s, {where}"),
        line("open", local),
    ]
    if allowed:
        lines.append(line("access", allowed))
    if host not in {"127.0.0.1", "localhost", "::1"}:
        lines.append("")
        lines.append(
            "  LISTENING ON THE NETWORK: anyone who can reach this computer can use this model."
        )
        lines.extend(line("network", url) for url in lan or ["(no network address found)"])
    else:
        lines.append(line("network", 'this computer only (set host = "0.0.0.0" to share)'))
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


def folder(summary: HealthSummary, host: str, port: int, allowed: str = "") -> str:
    """What a folder of models serves once the first loads have ended: each model's URL and
    version, and the files that are not served, with why; ``allowed``: who may call."""
    local, lan = urls(host, port)
    base = local.rstrip("/")
    lines = [f"winserve is serving a folder of models: {summary.folder}"]
    default = summary.default
    for model in summary.models:
        if model.version is None:
            lines.append(f"  {model.name:<24}NOT served: {model.reason or 'still loading'}")
            continue
        mark = "  (default: also at /predict, /)" if model.name == default else ""
        where = f"{base}/models/{model.name}/"
        lines.append(f"  {model.name:<24}{where}  version {model.version}{mark}")
    for _, reason in summary.not_served:
        lines.append(f"  NOT served: {reason}")
    if default is not None and summary.model(default) is None:
        lines.append(f"  default_model {default!r} is not in the folder: /predict and / answer 404")
    if not summary.models:
        lines.append("  (no model files yet: .joblib, .pkl, .skops, .onnx, MLflow folders)")
    lines.append(line("open", local))
    if allowed:
        lines.append(line("access", allowed))
    lines += [line("network", url) for url in lan]
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)
