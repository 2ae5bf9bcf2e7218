"""Program kind `dspy`: a DSPy module built from a signature, run under a
per-call LM, with learned state (demos, instructions) that travels in the
session state.

Spec (see schemas/README.md, *Execute request*):

    {kind: "dspy",
     signature: "question -> answer"                       (a DSPy signature string)
              | {inputs: ["question", "context: list[str]", {name, type?, desc?}],
                 outputs: [...], instructions: "..."},
     module: "Predict" (default) | "ChainOfThought" | "package.module:Class",
     lm: {model, api_base?, api_key_env?, temperature?, ...}     (optional)}

A custom `package.module:Class` must be a `dspy.Module` subclass; it is
constructed as `Class(signature)` when the spec has a `signature` and as
`Class()` when it has none. `execute_program` calls the module with the call's
args as keyword inputs and returns the prediction's fields as a map (for
ChainOfThought that includes `reasoning`). For Predict and ChainOfThought the
inputs must be exactly the signature's input fields.

LM resolution, per call, lowest to highest: the worker's environment
(SNAKEFLEET_LM_MODEL, SNAKEFLEET_LM_API_BASE, SNAKEFLEET_LM_API_KEY_ENV = the
*name* of the variable holding the key), the session state's `"lm"` map, the
spec's `lm` map. A layer with `model` replaces everything below it; a layer
without `model` adjusts the one below (e.g. spec `lm: {temperature: 0}`). A
literal `api_key` is refused: keys stay in the worker's environment, never in
Redis or Kafka. LM objects are cached per distinct config; each call runs
inside `dspy.context(lm=..., trace=[], disable_history=True)` -- never
`dspy.configure` -- so concurrent sessions cannot see each other's LM, and no
prompt history or trace accumulates in a long-lived worker.

Model "dummy" answers offline: every output field gets a deterministic value
derived from the inputs, "<prefix> <field> to: <input>" for strings (prefix
from the LM config's `prefix`, default "dummy"; several inputs are shown as
"name: value; ..."), a count or empty container for typed fields. When a demo
has exactly the call's inputs, the dummy answers with that demo's outputs, so
taught demos are observable.

State: after a call that changed the module's state, the new
`module.dump_state()` is stored in the session state as
`state["_programs"][program_id] = {"spec": <fingerprint>, "dump": <dump>}`
(and removed once the module is back to its freshly-built state). Before each
call the module is synced to that entry: a worker that builds the program, or
holds a cached copy older than the session state, loads it with
`load_state()`. The fingerprint (signature + module) keeps a dump made for
another version of the spec from being loaded. A call that fails leaves the
module as it was before the call.

Teaching: args `{"__demos__": [{field: value, ...}, ...]}` append demos to
every predictor of the module (a map `{predictor_name: [...]}` targets named
predictors, e.g. "self" for Predict, "predict" for ChainOfThought). With no
other args the call only teaches and returns `{"demos": {predictor: count}}`;
with inputs it teaches, then runs.

dspy is imported when the first dspy spec is built, never at worker start.
Importing it starts no thread and keeps no file open (its response cache is built
lazily on first use), so a zygote may preload it and fork workers.
"""

from __future__ import annotations

import os
import threading

from snakefleet.codec import EncodeError, decode_value, encode
from snakefleet.context import SessionContext
from snakefleet.errors import INVALID_PROGRAM, PROGRAM_ERROR, ProgramError, describe
from snakefleet.programs import Program, format_user_traceback, import_object

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

INSTALL_HINT = "pip install 'snakefleet[dspy]'"
STATE_KEY = "_programs"
DEMOS_ARG = "__demos__"
BUILTIN_MODULES = ("Predict", "ChainOfThought")
DEFAULT_MODULE = "Predict"
DUMMY_MODEL = "dummy"
DUMMY_PREFIX = "dummy"
# Keyword arguments dspy.Predict takes for itself: an input field of one of
# these names would never reach the prompt.
RESERVED_INPUTS = frozenset({"config", "lm", "demos", "signature", "new_signature", DEMOS_ARG})

ENV_MODEL = "SNAKEFLEET_LM_MODEL"
ENV_API_BASE = "SNAKEFLEET_LM_API_BASE"
ENV_API_KEY_ENV = "SNAKEFLEET_LM_API_KEY_ENV"
LM_CACHE_SIZE = 64


# ---------------------------------------------------------------- dspy import


def import_dspy() -> Any:
    """The dspy module, imported on first use; a clear error without it."""
    import importlib

    try:
        return importlib.import_module("dspy")
    except ImportError as e:
        missing = getattr(e, "name", None) or "dspy"
        why = (
            "which is not installed in this worker"
            if missing == "dspy"
            else f"which this worker cannot import (it needs '{missing}')"
        )
        raise ProgramError(
            INVALID_PROGRAM,
            f"the dspy program kind needs the 'dspy' package, {why} ({describe(e)}); "
            f"install it with: {INSTALL_HINT}",
            None if missing == "dspy" else user_traceback(e),
            field="spec.kind",
        ) from None


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` without this module's frames: user code first."""
    return format_user_traceback(exc, __name__)


def _normalize(value: Any, what: str, error_type: str) -> Any:
    """`value` as it comes back from the session state (msgpack round trip)."""
    try:
        return decode_value(encode(value))
    except EncodeError as e:
        raise ProgramError(
            error_type, f"{what} cannot be stored in the session state: {e}"
        ) from None


# ---------------------------------------------------------------- signature


def _field_text(item: Any, where: str) -> tuple[str, str | None]:
    """('name' or 'name: type', desc) of one signature field item."""
    if isinstance(item, str):
        text, desc = item.strip(), None
        name = text.partition(":")[0].strip()
    elif isinstance(item, dict):
        unknown = sorted(str(k) for k in item if k not in ("name", "type", "desc"))
        if unknown:
            raise ProgramError(
                INVALID_PROGRAM,
                f"{where}: unknown key(s) {', '.join(unknown)} (a field is a name string or a "
                "map {name, type?, desc?})",
                field="spec.signature",
            )
        raw_name, type_, desc = item.get("name"), item.get("type"), item.get("desc")
        if not isinstance(type_, (str, type(None))) or not isinstance(desc, (str, type(None))):
            raise ProgramError(
                INVALID_PROGRAM,
                f"{where}: 'type' and 'desc' must be strings",
                field="spec.signature",
            )
        name = raw_name if isinstance(raw_name, str) else ""
        text = f"{name}: {type_}" if type_ else name
    else:
        raise ProgramError(
            INVALID_PROGRAM,
            f"{where} must be a field name string or a map {{name, type?, desc?}}, "
            f"got {type(item).__name__}",
            field="spec.signature",
        )
    if not name.isidentifier():
        raise ProgramError(
            INVALID_PROGRAM,
            f"{where}: field name {name!r} is not an identifier",
            field="spec.signature",
        )
    return text, desc


def make_signature(dspy: Any, sig: Any) -> Any:
    """A dspy.Signature class from the spec's `signature` (string or map)."""
    descs: dict[str, str] = {}
    instructions = None
    if isinstance(sig, str):
        text = sig
    elif isinstance(sig, dict):
        unknown = sorted(str(k) for k in sig if k not in ("inputs", "outputs", "instructions"))
        if unknown:
            raise ProgramError(
                INVALID_PROGRAM,
                f"signature map has unknown key(s) {', '.join(unknown)} "
                "(it takes inputs, outputs, instructions)",
                field="spec.signature",
            )
        sides = []
        for side in ("inputs", "outputs"):
            items = sig.get(side)
            if not isinstance(items, list) or (side == "outputs" and not items):
                raise ProgramError(
                    INVALID_PROGRAM,
                    f"signature map needs '{side}': a {'non-empty ' if side == 'outputs' else ''}"
                    "list of fields",
                    field="spec.signature",
                )
            texts = []
            for i, item in enumerate(items):
                field_text, desc = _field_text(item, f"signature {side}[{i}]")
                texts.append(field_text)
                if desc is not None:
                    descs[field_text.partition(":")[0].strip()] = desc
            sides.append(", ".join(texts))
        text = " -> ".join(sides)
        instructions = sig.get("instructions")
        if not isinstance(instructions, (str, type(None))):
            raise ProgramError(
                INVALID_PROGRAM, "signature 'instructions' must be a string", field="spec.signature"
            )
    else:
        raise ProgramError(
            INVALID_PROGRAM,
            "a dspy spec's 'signature' must be a string like 'question -> answer' or a map "
            f"{{inputs, outputs, instructions?}}, got {type(sig).__name__}",
            field="spec.signature",
        )
    try:
        signature = dspy.Signature(text, instructions)
    except Exception as e:  # noqa: BLE001 - dspy raises ValueError, SyntaxError, ...
        raise ProgramError(
            INVALID_PROGRAM, f"invalid signature {text!r}: {describe(e)}", field="spec.signature"
        ) from None
    if not signature.output_fields:
        raise ProgramError(
            INVALID_PROGRAM,
            f"invalid signature {text!r}: it has no output field",
            field="spec.signature",
        )
    for name, desc in descs.items():
        signature = signature.with_updated_fields(name, desc=desc)
    return signature


def signature_text(signature: Any) -> str:
    return f"{', '.join(signature.input_fields)} -> {', '.join(signature.output_fields)}"


# ---------------------------------------------------------------- module


def resolve_module_class(dspy: Any, path: str) -> Any:
    """Import 'package.module:Class' and check it is a dspy.Module subclass."""
    obj = import_object(path, f"dspy module {path!r}", "package.module:Class", "spec.module")
    if not (isinstance(obj, type) and issubclass(obj, dspy.Module)):
        raise ProgramError(
            INVALID_PROGRAM,
            f"dspy module {path!r} is not a dspy.Module subclass (it is {obj!r})",
            field="spec.module",
        )
    return obj


def make_module(dspy: Any, name: Any, signature: Any) -> Any:
    if not isinstance(name, str):
        raise ProgramError(
            INVALID_PROGRAM,
            f"a dspy spec's 'module' must be a string, got {type(name).__name__}",
            field="spec.module",
        )
    short = name[5:] if name.startswith("dspy.") else name
    if short in BUILTIN_MODULES:
        if signature is None:
            raise ProgramError(
                INVALID_PROGRAM,
                f"a dspy spec with module {name!r} needs a 'signature', e.g. 'question -> answer'",
                field="spec.signature",
            )
        reserved = sorted(RESERVED_INPUTS.intersection(signature.input_fields))
        if reserved:
            raise ProgramError(
                INVALID_PROGRAM,
                f"input field name(s) {', '.join(reserved)} are reserved by dspy.{short}",
                field="spec.signature",
            )
        return getattr(dspy, short)(signature)
    if ":" not in name:
        raise ProgramError(
            INVALID_PROGRAM,
            f"unknown dspy module {name!r}: use 'Predict', 'ChainOfThought' or "
            "'package.module:Class' (a dspy.Module subclass)",
            field="spec.module",
        )
    cls = resolve_module_class(dspy, name)
    try:
        return cls(signature) if signature is not None else cls()
    except Exception as e:  # noqa: BLE001 - user code
        call = f"{cls.__name__}(signature)" if signature is not None else f"{cls.__name__}()"
        raise ProgramError(
            INVALID_PROGRAM,
            f"cannot construct dspy module {name!r} as {call}: {describe(e)}",
            user_traceback(e),
            field="spec.module",
        ) from None


# ---------------------------------------------------------------- LM config


def check_lm_config(
    value: Any, where: str, error_type: str, field: str | None = None
) -> dict[str, Any] | None:
    """A validated copy of an LM config map (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProgramError(
            error_type,
            f"{where} must be a map {{model, ...}}, got {type(value).__name__}",
            field=field,
        )
    for key in value:
        if not isinstance(key, str):
            raise ProgramError(error_type, f"{where} has a non-string key {key!r}", field=field)
    if "api_key" in value:
        raise ProgramError(
            error_type,
            f"{where} must not carry 'api_key': put the key in an environment variable of the "
            "workers and name that variable in 'api_key_env'",
            field=field,
        )
    for key in ("model", "api_base", "api_key_env", "prefix"):
        if key in value and not (isinstance(value[key], str) and value[key]):
            raise ProgramError(
                error_type, f"{where}: '{key}' must be a non-empty string", field=field
            )
    return dict(value)


def env_lm_config() -> dict[str, Any] | None:
    """The fleet-wide default LM from the worker's environment."""
    model = os.environ.get(ENV_MODEL)
    if not model:
        return None
    config: dict[str, Any] = {"model": model}
    api_base = os.environ.get(ENV_API_BASE)
    if api_base:
        config["api_base"] = api_base
    key_env = os.environ.get(ENV_API_KEY_ENV)
    if key_env:
        config["api_key_env"] = key_env
    return config


def resolve_lm_config(
    session_state: Mapping[str, Any], spec_lm: dict[str, Any] | None
) -> dict[str, Any]:
    """The LM config of one call: environment < session state 'lm' < spec 'lm'."""
    session_lm = check_lm_config(session_state.get("lm"), "session state 'lm'", PROGRAM_ERROR)
    config: dict[str, Any] = {}
    for layer in (env_lm_config(), session_lm, spec_lm):
        if layer is None:
            continue
        if "model" in layer:
            config = dict(layer)
        else:
            config.update(layer)
    if not config.get("model"):
        raise ProgramError(
            PROGRAM_ERROR,
            f"no LM configured for this dspy program: set {ENV_MODEL} in the worker's "
            "environment, 'lm' in the session state or 'lm' in the program spec "
            "(model 'dummy' answers offline)",
        )
    return config


class LMCache:
    """LM objects per distinct config (least recently used dropped first)."""

    def __init__(self, size: int = LM_CACHE_SIZE) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._lms: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._lms)

    def clear(self) -> None:
        with self._lock:
            self._lms.clear()

    def get(self, dspy: Any, config: dict[str, Any]) -> Any:
        import json

        key = json.dumps(config, sort_keys=True, default=repr)
        with self._lock:
            lm = self._lms.pop(key, None)
            if lm is None:
                lm = make_lm(dspy, config)
                while len(self._lms) >= self.size:
                    del self._lms[next(iter(self._lms))]
            self._lms[key] = lm
        return lm


LMS = LMCache()


def api_key_of(config: Mapping[str, Any]) -> str | None:
    """The key named by config['api_key_env'] (None when no name is given)."""
    name = config.get("api_key_env")
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise ProgramError(
            PROGRAM_ERROR,
            f"the LM config's api_key_env names the environment variable {name!r}, "
            "which is not set in this worker",
        )
    return value


def make_lm(dspy: Any, config: dict[str, Any]) -> Any:
    model = config["model"]
    if model == DUMMY_MODEL:
        return dummy_lm_class(dspy)(str(config.get("prefix", DUMMY_PREFIX)))
    kwargs = {k: v for k, v in config.items() if k not in ("model", "api_key_env", "prefix")}
    key = api_key_of(config)
    if key is not None:
        kwargs["api_key"] = key
    try:
        return dspy.LM(model, **kwargs)
    except Exception as e:  # noqa: BLE001 - bad options for the provider
        raise ProgramError(
            PROGRAM_ERROR, scrub(f"cannot create LM {model!r}: {describe(e)}", key)
        ) from None


def scrub(text: str, secret: str | None) -> str:
    """`text` with any occurrence of `secret` masked."""
    if secret and len(secret) >= 4 and secret in text:
        return text.replace(secret, "***")
    return text


# ---------------------------------------------------------------- dummy LM

_DUMMY_CLASS: Any = None


def dummy_lm_class(dspy: Any) -> Any:
    """DummyLM that fills every output field from the inputs (built once)."""
    global _DUMMY_CLASS
    if _DUMMY_CLASS is None:
        _DUMMY_CLASS = _make_dummy_class(dspy)
    return _DUMMY_CLASS


_HEADER = r"\[\[ ## (\w+) ## \]\]"


def _parse_fields(content: str) -> dict[str, str]:
    """Field name -> text of a `[[ ## name ## ]]` formatted message."""
    import re

    parts = re.split(rf"^{_HEADER}[ \t]*$\n?", content, flags=re.MULTILINE)
    fields: dict[str, str] = {}
    for i in range(1, len(parts) - 1, 2):
        text = parts[i + 1]
        cut = text.find("\n\nRespond with ")
        fields[parts[i]] = (text if cut < 0 else text[:cut]).strip()
    fields.pop("completed", None)
    return fields


def _parse_outputs(system: str) -> list[tuple[str, str]]:
    """(name, type) of each output field listed in the adapter's system message."""
    import re

    rest = system.partition("Your output fields are:")[2]
    section = rest.split("All interactions will be structured", 1)[0]
    return re.findall(r"^\s*\d+\. `(\w+)` \((.+?)\)(?::|$)", section, flags=re.MULTILINE)


def dummy_value(prefix: str, name: str, type_: str, summary: str) -> Any:
    """A deterministic value of `type_` for output field `name`."""
    text = f"{prefix} {name} to: {summary}"
    t = type_.replace(" ", "")
    if t == "int":
        return len(summary)
    if t == "float":
        return float(len(summary))
    if t == "bool":
        return True
    if t.startswith(("list[str]", "List[str]")):
        return [text]
    if t.startswith(("list", "List", "tuple", "set")):
        return []
    if t.startswith(("dict", "Dict")):
        return {}
    if t.startswith("Literal["):
        import ast

        try:
            options = ast.literal_eval(f"({type_.strip()[len('Literal[') : -1]},)")
            return options[0]
        except (ValueError, SyntaxError, IndexError):
            return text
    return text


def dummy_answer(prefix: str, messages: list[dict[str, Any]]) -> str:
    """The dummy LM's reply to an adapter-formatted conversation."""
    import json

    system = next((m["content"] for m in messages if m.get("role") == "system"), "")
    last = messages[-1].get("content", "") if messages else ""
    inputs = _parse_fields(last)
    # A demo with exactly these inputs: answer as it did.
    for question, answer in zip(messages[:-1], messages[1:-1]):
        if (
            inputs
            and question.get("role") == "user"
            and answer.get("role") == "assistant"
            and _parse_fields(question.get("content", "")) == inputs
        ):
            return str(answer.get("content", ""))
    if len(inputs) == 1:
        summary = next(iter(inputs.values()))
    else:
        summary = "; ".join(f"{k}: {v}" for k, v in inputs.items())
    values = {name: dummy_value(prefix, name, t, summary) for name, t in _parse_outputs(system)}
    if "Respond with a JSON object" in last:
        return json.dumps(values, ensure_ascii=False)
    blocks = [
        f"[[ ## {name} ## ]]\n{v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for name, v in values.items()
    ]
    return "\n\n".join([*blocks, "[[ ## completed ## ]]"])


def _make_dummy_class(dspy: Any) -> Any:
    import importlib

    engines: Any = importlib.import_module("dspy.clients.engines.dummy_engine")
    lm15: Any = importlib.import_module("dspy.lm15")
    Message, Response, TextPart, Usage = lm15.Message, lm15.Response, lm15.TextPart, lm15.Usage

    class FillEngine(engines.DummyEngine):  # type: ignore[misc]
        def _complete_messages(self, messages: list[dict[str, Any]]) -> Any:
            text = dummy_answer(self.owner.prefix, messages)
            return Response(
                id=None,
                model=DUMMY_MODEL,
                message=Message.assistant([TextPart(text)]),
                finish_reason="stop",
                usage=Usage(input_tokens=0, output_tokens=0, total_tokens=0),
            )

    class FillDummyLM(dspy.utils.DummyLM):  # type: ignore[misc]
        """DummyLM answering every output field of any signature from the
        inputs (see `dummy_answer`), instead of from a script."""

        def __init__(self, prefix: str = DUMMY_PREFIX) -> None:
            super().__init__([])
            self.prefix = prefix
            self._install()

        def _install(self) -> None:
            self._engine_spec = FillEngine(self)
            self._async_engine_spec = engines.AsyncDummyEngine(self._engine_spec)

        def copy(self, **kwargs: Any) -> Any:
            copied = super().copy(**kwargs)
            copied._install()
            return copied

        def __repr__(self) -> str:
            return f"FillDummyLM(prefix={self.prefix!r})"

    return FillDummyLM


# ---------------------------------------------------------------- program


def to_result(out: Any) -> Any:
    """A prediction (or whatever a custom module returns) as wire data."""
    if hasattr(out, "items") and callable(out.items):
        return {str(k): _plain(v) for k, v in out.items()}
    return _plain(out)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def spec_fingerprint(spec: Mapping[str, Any]) -> str:
    """Identifies what a saved dump fits: the signature and the module."""
    import hashlib
    import json

    basis = {"signature": spec.get("signature"), "module": spec.get("module", DEFAULT_MODULE)}
    text = json.dumps(basis, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class DspyProgram(Program):
    __slots__ = (
        "_initial",
        "_synced",
        "dspy",
        "fingerprint",
        "input_names",
        "module",
        "spec_lm",
    )

    def __init__(
        self,
        program_id: str,
        spec: Mapping[str, Any],
        dspy: Any,
        module: Any,
        input_names: list[str] | None,
        spec_lm: dict[str, Any] | None,
    ) -> None:
        super().__init__(program_id, spec)
        self.dspy = dspy
        self.module = module
        self.input_names = input_names
        self.spec_lm = spec_lm
        self.fingerprint = spec_fingerprint(spec)
        self._initial = _normalize(module.dump_state(), "the module's state", INVALID_PROGRAM)
        # The session-state entry the module currently reflects (None: fresh).
        self._synced: dict[str, Any] | None = None

    # ------------------------------------------------------------ run

    def run(self, ctx: SessionContext, inputs: dict[str, Any]) -> Any:
        inputs = dict(inputs)
        demos = inputs.pop(DEMOS_ARG, None)
        self.sync_in(ctx.state)
        secret: str | None = None
        try:
            if demos is not None:
                counts = self.add_demos(demos)
                if not inputs:
                    self.sync_out(ctx)
                    return {"demos": counts}
            self.check_inputs(inputs)
            config = resolve_lm_config(ctx.state, self.spec_lm)
            secret = api_key_of(config)
            lm = LMS.get(self.dspy, config)
            try:
                with self.dspy.context(lm=lm, trace=[], disable_history=True):
                    out = self.module(**inputs)
            except Exception as e:  # noqa: BLE001 - user module or the LM: report it
                raise ProgramError(
                    PROGRAM_ERROR,
                    scrub(describe(e), secret),
                    scrub(user_traceback(e), secret),
                ) from None
            result = to_result(out)
            self.sync_out(ctx)
            return result
        except BaseException:
            self.restore()  # a failed call changes nothing
            raise

    def check_inputs(self, inputs: dict[str, Any]) -> None:
        if self.input_names is None:
            return
        missing = [name for name in self.input_names if name not in inputs]
        unknown = [name for name in inputs if name not in self.input_names]
        problems = []
        if missing:
            problems.append(f"missing input field(s) {', '.join(map(repr, missing))}")
        if unknown:
            problems.append(f"unknown input(s) {', '.join(map(repr, unknown))}")
        if problems:
            expected = ", ".join(self.input_names) or "none"
            raise ProgramError(
                PROGRAM_ERROR,
                f"{'; '.join(problems)} for dspy program '{self.program_id}' "
                f"(its inputs: {expected})",
            )

    # ------------------------------------------------------------ demos

    def predictors(self) -> list[tuple[str, Any]]:
        return list(self.module.named_predictors())

    def add_demos(self, demos: Any) -> dict[str, int]:
        """Append demos (a list for every predictor, or a map by predictor
        name); returns each predictor's demo count."""
        predictors = dict(self.predictors())
        if not predictors:
            raise ProgramError(PROGRAM_ERROR, f"{DEMOS_ARG}: this module has no predictor")
        if isinstance(demos, list):
            plan = {name: demos for name in predictors}
        elif isinstance(demos, dict):
            unknown = [name for name in demos if name not in predictors]
            if unknown:
                raise ProgramError(
                    PROGRAM_ERROR,
                    f"{DEMOS_ARG}: no predictor named {', '.join(map(repr, unknown))} "
                    f"(predictors: {', '.join(predictors)})",
                )
            plan = dict(demos)
        else:
            raise ProgramError(
                PROGRAM_ERROR,
                f"{DEMOS_ARG} must be a list of demo maps or a map of predictor name to such "
                f"a list, got {type(demos).__name__}",
            )
        for name, items in plan.items():
            predictor = predictors[name]
            fields = predictor.signature.fields
            if not isinstance(items, list):
                raise ProgramError(
                    PROGRAM_ERROR, f"{DEMOS_ARG}[{name!r}] must be a list of demo maps"
                )
            new = []
            for i, demo in enumerate(items):
                if not isinstance(demo, dict) or not demo:
                    raise ProgramError(
                        PROGRAM_ERROR, f"{DEMOS_ARG}: demo {i} must be a non-empty map of fields"
                    )
                unknown = [str(k) for k in demo if k not in fields]
                if unknown:
                    raise ProgramError(
                        PROGRAM_ERROR,
                        f"{DEMOS_ARG}: demo {i} has field(s) {', '.join(map(repr, unknown))} "
                        f"that predictor {name!r} does not have ({', '.join(fields)})",
                    )
                new.append(self.dspy.Example(**demo))
            predictor.demos = [*predictor.demos, *new]
        return {name: len(p.demos) for name, p in predictors.items()}

    # ------------------------------------------------------------ state

    def saved_entry(self, state: Mapping[str, Any]) -> dict[str, Any] | None:
        """This program's entry in the session state, if it fits this spec."""
        programs = state.get(STATE_KEY)
        entry = programs.get(self.program_id) if isinstance(programs, dict) else None
        if (
            isinstance(entry, dict)
            and entry.get("spec") == self.fingerprint
            and isinstance(entry.get("dump"), dict)
        ):
            return entry
        return None

    def sync_in(self, state: Mapping[str, Any]) -> None:
        """Make the module reflect the session state's entry (or its fresh
        state when there is none)."""
        target = self.saved_entry(state)
        if target == self._synced:
            return
        self._synced = None
        try:
            self.load(target["dump"] if target is not None else self._initial)
        except Exception as e:  # noqa: BLE001 - a corrupt or foreign dump
            self.load(self._initial)
            raise ProgramError(
                PROGRAM_ERROR,
                f"cannot load the saved state of dspy program '{self.program_id}' "
                f"(session state {STATE_KEY}.{self.program_id}): {describe(e)}",
                user_traceback(e),
            ) from None
        self._synced = target

    def load(self, dump: dict[str, Any]) -> None:
        import copy

        self.module.load_state(copy.deepcopy(dump))

    def restore(self) -> None:
        """Back to the last synced state (after a failed call)."""
        try:
            self.load(self._synced["dump"] if self._synced is not None else self._initial)
        except Exception:  # noqa: BLE001 - loaded before, so this is unexpected; start fresh
            self.load(self._initial)
            self._synced = None

    def sync_out(self, ctx: SessionContext) -> None:
        """Store the module's state in the session state if it changed."""
        dump = _normalize(self.module.dump_state(), "the module's state", PROGRAM_ERROR)
        entry = None if dump == self._initial else {"spec": self.fingerprint, "dump": dump}
        state = ctx.state
        programs = state.get(STATE_KEY)
        current = programs.get(self.program_id) if isinstance(programs, dict) else None
        if entry != current:
            if entry is None:
                if isinstance(programs, dict):
                    del programs[self.program_id]
                    if not programs:
                        del state[STATE_KEY]
            else:
                if not isinstance(programs, dict):
                    programs = state[STATE_KEY] = {}
                programs[self.program_id] = entry
        self._synced = entry


# ---------------------------------------------------------------- build


def build_dspy(program_id: str, spec: Mapping[str, Any]) -> Program:
    """The `dspy` kind's builder (registered by path in snakefleet.kinds)."""
    dspy = import_dspy()
    spec_lm = check_lm_config(spec.get("lm"), "the spec's 'lm'", INVALID_PROGRAM, "spec.lm")
    sig_spec = spec.get("signature")
    signature = make_signature(dspy, sig_spec) if sig_spec is not None else None
    name = spec.get("module", DEFAULT_MODULE)
    module = make_module(dspy, name, signature)
    builtin = isinstance(name, str) and name.removeprefix("dspy.") in BUILTIN_MODULES
    input_names = list(signature.input_fields) if builtin and signature is not None else None
    return DspyProgram(program_id, spec, dspy, module, input_names, spec_lm)
