"""The `dspy` program kind: in-process through the registry, through a real
`python -m snakefleet.worker` subprocess, and in a zygote-forked worker.
Offline throughout: the LM is the "dummy" model (or an unreachable local
address, for the real-LM error path)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import WorkerProc, worker_env

from snakefleet import dspy_kind
from snakefleet.context import SessionContext
from snakefleet.programs import ProgramError, ProgramRegistry, available_kinds, run_program

HAVE_DSPY = importlib.util.find_spec("dspy") is not None
needs_dspy = pytest.mark.skipif(not HAVE_DSPY, reason="dspy is not installed")

DUMMY = {"lm": {"model": "dummy"}}
QA = {"kind": "dspy", "signature": "question -> answer"}
COT = {"kind": "dspy", "signature": "question -> answer", "module": "ChainOfThought"}
QABOT = {"kind": "dspy", "module": "snakefleet.examples:QABot"}

if HAVE_DSPY:
    import dspy

    class TwoStep(dspy.Module):  # type: ignore[misc]
        """Asks its LM twice, waiting at `barrier` in between: two sessions
        running it on two threads are both mid-call at the same time."""

        barrier: threading.Barrier | None = None

        def __init__(self, signature: Any) -> None:
            super().__init__()
            self.ask = dspy.Predict(signature)

        def forward(self, **inputs: Any) -> Any:
            first = self.ask(**inputs)
            if TwoStep.barrier is not None:
                TwoStep.barrier.wait(10)
            second = self.ask(**inputs)
            return dspy.Prediction(first=first.answer, second=second.answer)

    class NoArgs(dspy.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.ask = dspy.Predict("text -> label")

        def forward(self, text: str) -> Any:
            return self.ask(text=text)


@pytest.fixture(autouse=True)
def _no_lm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests choose their LM; the runner's environment does not."""
    for name in (dspy_kind.ENV_MODEL, dspy_kind.ENV_API_BASE, dspy_kind.ENV_API_KEY_ENV):
        monkeypatch.delenv(name, raising=False)


def execute(
    reg: ProgramRegistry,
    args: dict[str, Any],
    state: dict[str, Any] | None = None,
    spec: dict[str, Any] | None = None,
    session: str = "s",
    program: str = "qa",
) -> tuple[Any, dict[str, Any] | None]:
    """One execute_program as the worker runs it: (value, new state or None).
    The state is copied, as if it had travelled through Redis."""
    built = reg.ensure(session, program, spec)
    ctx = SessionContext(session, "w", program, copy.deepcopy(state))
    value = run_program(built, ctx, args)
    return value, ctx.state_delta()


def error_of(reg: ProgramRegistry, *a: Any, **kw: Any) -> ProgramError:
    with pytest.raises(ProgramError) as info:
        execute(reg, *a, **kw)
    return info.value


# ---------------------------------------------------------------- modules


@needs_dspy
def test_predict_answers_from_its_input() -> None:
    reg = ProgramRegistry()
    value, state = execute(reg, {"question": "What is DSPex?"}, DUMMY, QA)
    assert value == {"answer": "dummy answer to: What is DSPex?"}
    assert state is None  # nothing learned, nothing to store
    assert reg.get("s", "qa") is not None and reg.get("s", "qa").kind == "dspy"  # type: ignore[union-attr]


@needs_dspy
def test_chain_of_thought_has_reasoning() -> None:
    value, _ = execute(ProgramRegistry(), {"question": "Why?"}, DUMMY, COT)
    assert value == {"reasoning": "dummy reasoning to: Why?", "answer": "dummy answer to: Why?"}


@needs_dspy
def test_custom_module_with_and_without_signature() -> None:
    reg = ProgramRegistry()
    value, _ = execute(reg, {"question": "hi"}, DUMMY, QABOT, program="bot")
    assert value == {
        "reasoning": "dummy reasoning to: hi",
        "answer": "dummy answer to: hi",
        "answered_by": "QABot",
    }
    with_sig = {**QABOT, "signature": "topic -> summary"}
    value, _ = execute(reg, {"topic": "fleets"}, DUMMY, with_sig, program="bot2")
    assert value["summary"] == "dummy summary to: fleets" and value["answered_by"] == "QABot"
    # A custom module checks its own inputs: its error names the field.
    err = error_of(reg, {"subject": "x"}, DUMMY, program="bot2")
    assert err.error_type == "program_error" and "'topic'" in err.message
    assert "forward" in (err.traceback or "")


@needs_dspy
def test_custom_module_without_constructor_args() -> None:
    reg = ProgramRegistry()
    spec = {"kind": "dspy", "module": "test_dspy_kind:NoArgs"}
    value, _ = execute(reg, {"text": "great"}, DUMMY, spec)
    assert value == {"label": "dummy label to: great"}
    # Given a signature, a custom module is constructed as Class(signature).
    with pytest.raises(ProgramError) as info:
        reg.create("s", "p", {**spec, "signature": "a -> b"})
    assert info.value.error_type == "invalid_program"
    assert "NoArgs(signature)" in info.value.message and info.value.field == "spec.module"


@needs_dspy
def test_signature_map_with_types_descriptions_and_instructions() -> None:
    spec = {
        "kind": "dspy",
        "signature": {
            "inputs": [{"name": "question", "desc": "what the user asked"}, "context: list[str]"],
            "outputs": [
                "answer",
                {"name": "confidence", "type": "float"},
                "ok: bool",
                "tags: list[str]",
                "mood: Literal['calm', 'busy']",
            ],
            "instructions": "Answer from the context.",
        },
    }
    reg = ProgramRegistry()
    value, _ = execute(reg, {"question": "Q?", "context": ["c1"]}, DUMMY, spec)
    summary = 'question: Q?; context: ["c1"]'
    assert value == {
        "answer": f"dummy answer to: {summary}",
        "confidence": float(len(summary)),
        "ok": True,
        "tags": [f"dummy tags to: {summary}"],
        "mood": "calm",
    }
    module = reg.get("s", "qa").module  # type: ignore[union-attr]
    assert module.signature.instructions == "Answer from the context."
    assert module.signature.input_fields["question"].json_schema_extra["desc"] == (
        "what the user asked"
    )


@needs_dspy
@pytest.mark.parametrize(
    ("signature", "needle"),
    [
        ("question answer", "invalid signature 'question answer'"),
        ("q -> q", "distinct names"),
        ("question ->", "no output field"),
        ("1x -> y", "invalid signature '1x -> y'"),
        ("q -> a: NotAType", "NotAType"),
        (42, "must be a string like 'question -> answer'"),
        ({"inputs": ["q"]}, "needs 'outputs'"),
        ({"inputs": ["q"], "outputs": ["a"], "instruction": "x"}, "unknown key(s) instruction"),
        ({"inputs": ["not a name"], "outputs": ["a"]}, "'not a name' is not an identifier"),
        ({"inputs": [7], "outputs": ["a"]}, "signature inputs[0]"),
        ("lm, question -> answer", "reserved"),
    ],
)
def test_bad_signature_is_invalid_program(signature: Any, needle: str) -> None:
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().create("s", "p", {"kind": "dspy", "signature": signature})
    assert info.value.error_type == "invalid_program"
    assert info.value.field == "spec.signature"
    assert needle in info.value.message


@needs_dspy
@pytest.mark.parametrize(
    ("module", "needle"),
    [
        ("Foo", "unknown dspy module 'Foo'"),
        ("ReAct", "unknown dspy module 'ReAct'"),
        (5, "'module' must be a string"),
        ("no_such_module_xyz:Bot", "cannot import dspy module 'no_such_module_xyz:Bot'"),
        ("snakefleet.examples:Nope", "'Nope' not found"),
        ("snakefleet.examples:echo", "is not a dspy.Module subclass"),
        (":Bot", "must look like 'package.module:Class'"),
    ],
)
def test_unknown_module_is_invalid_program(module: Any, needle: str) -> None:
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().create("s", "p", {**QA, "module": module})
    assert info.value.error_type == "invalid_program"
    assert info.value.field == "spec.module"
    assert needle in info.value.message


@needs_dspy
def test_builtin_module_needs_a_signature() -> None:
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().create("s", "p", {"kind": "dspy", "module": "ChainOfThought"})
    assert info.value.field == "spec.signature" and "needs a 'signature'" in info.value.message


@needs_dspy
def test_missing_or_unknown_input_is_program_error() -> None:
    reg = ProgramRegistry()
    err = error_of(reg, {}, DUMMY, QA)
    assert err.error_type == "program_error"
    assert err.message == (
        "missing input field(s) 'question' for dspy program 'qa' (its inputs: question)"
    )
    err = error_of(reg, {"question": "q", "extra": 1}, DUMMY)
    assert "unknown input(s) 'extra'" in err.message
    assert execute(reg, {"question": "still fine"}, DUMMY)[0] == {
        "answer": "dummy answer to: still fine"
    }


# ---------------------------------------------------------------- LMs


def test_lm_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    resolve = dspy_kind.resolve_lm_config
    with pytest.raises(ProgramError) as info:
        resolve({}, None)
    assert info.value.error_type == "program_error" and "SNAKEFLEET_LM_MODEL" in info.value.message
    monkeypatch.setenv("SNAKEFLEET_LM_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("SNAKEFLEET_LM_API_BASE", "http://proxy:4000")
    monkeypatch.setenv("SNAKEFLEET_LM_API_KEY_ENV", "FLEET_KEY")
    env = {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://proxy:4000",
        "api_key_env": "FLEET_KEY",
    }
    assert resolve({}, None) == env
    # A layer without a model adjusts the one below it ...
    assert resolve({"lm": {"temperature": 0.5}}, None) == {**env, "temperature": 0.5}
    # ... a layer with a model replaces it: session over environment ...
    session = {"lm": {"model": "dummy", "prefix": "S"}}
    assert resolve(session, None) == {"model": "dummy", "prefix": "S"}
    # ... and the spec over both.
    assert resolve(session, {"model": "dummy", "prefix": "P"}) == {"model": "dummy", "prefix": "P"}
    assert resolve(session, {"prefix": "P2"}) == {"model": "dummy", "prefix": "P2"}


@pytest.mark.parametrize(
    ("lm", "needle"),
    [
        ("dummy", "must be a map"),
        ({"model": ""}, "'model' must be a non-empty string"),
        ({"model": "openai/x", "api_key": "sk-literal"}, "must not carry 'api_key'"),
        ({"model": "openai/x", "api_key_env": 3}, "'api_key_env' must be a non-empty string"),
    ],
)
def test_bad_lm_config(lm: Any, needle: str) -> None:
    with pytest.raises(ProgramError) as info:
        dspy_kind.resolve_lm_config({"lm": lm}, None)
    assert info.value.error_type == "program_error" and needle in info.value.message
    assert "sk-literal" not in info.value.message
    if HAVE_DSPY:
        with pytest.raises(ProgramError) as info:
            ProgramRegistry().create("s", "p", {**QA, "lm": lm})
        assert info.value.error_type == "invalid_program" and info.value.field == "spec.lm"
        assert needle in info.value.message


@needs_dspy
def test_real_lm_reads_its_key_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_FLEET_KEY", "sk-test-secret-0123456789")
    config = {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key_env": "TEST_FLEET_KEY",
        "temperature": 0.25,
    }
    lm = dspy_kind.make_lm(dspy, config)
    assert isinstance(lm, dspy.LM) and lm.model == "openai/gpt-4o-mini"
    assert lm.kwargs["api_key"] == "sk-test-secret-0123456789"
    assert lm.kwargs["api_base"] == "http://127.0.0.1:9/v1" and lm.kwargs["temperature"] == 0.25
    monkeypatch.delenv("TEST_FLEET_KEY")
    dspy_kind.LMS.clear()
    with pytest.raises(ProgramError) as info:
        dspy_kind.LMS.get(dspy, config)
    assert "'TEST_FLEET_KEY'" in info.value.message and "not set" in info.value.message


@needs_dspy
def test_unreachable_lm_is_a_program_error_without_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real (non-dummy) path, offline: port 9 on localhost refuses."""
    secret = "sk-test-secret-0123456789"
    monkeypatch.setenv("TEST_FLEET_KEY", secret)
    lm = {
        "model": "openai/gpt-4o-mini",
        "api_base": "http://127.0.0.1:9/v1",
        "api_key_env": "TEST_FLEET_KEY",
        "num_retries": 0,
        "cache": False,
    }
    reg = ProgramRegistry()
    err = error_of(reg, {"question": "q"}, {"lm": lm}, QA)
    assert err.error_type == "program_error"
    assert "127.0.0.1:9" in err.message
    assert secret not in err.message and secret not in (err.traceback or "")
    assert dspy_kind.scrub(f"bad key {secret}", secret) == "bad key ***"


@needs_dspy
def test_lm_objects_are_cached_per_config() -> None:
    cache = dspy_kind.LMCache(size=2)
    a = cache.get(dspy, {"model": "dummy", "prefix": "A"})
    assert cache.get(dspy, {"prefix": "A", "model": "dummy"}) is a
    b = cache.get(dspy, {"model": "dummy", "prefix": "B"})
    assert b is not a and len(cache) == 2
    cache.get(dspy, {"model": "dummy", "prefix": "C"})  # evicts A, the least recently used
    assert len(cache) == 2 and cache.get(dspy, {"model": "dummy", "prefix": "B"}) is b
    assert cache.get(dspy, {"model": "dummy", "prefix": "A"}) is not a


@needs_dspy
def test_interleaved_sessions_get_their_own_lm() -> None:
    """Same worker (registry), same program id, two sessions whose state picks
    different LMs; calls alternate."""
    reg = ProgramRegistry()
    states = {s: {"lm": {"model": "dummy", "prefix": s}} for s in ("A", "B")}
    for i in range(6):
        for s in ("A", "B"):
            value, _ = execute(reg, {"question": f"{s}{i}"}, states[s], QA, session=s)
            assert value == {"answer": f"{s} answer to: {s}{i}"}


@needs_dspy
def test_concurrent_sessions_do_not_leak_lms() -> None:
    """Two threads, each mid-call at the same time (a barrier between the two
    LM calls of one execution): each call keeps its own session's LM."""
    reg = ProgramRegistry()
    spec = {"kind": "dspy", "signature": "question -> answer", "module": "test_dspy_kind:TwoStep"}
    for s in ("A", "B"):
        reg.create(s, "two", spec)
    TwoStep.barrier = threading.Barrier(2)
    results: dict[str, list[Any]] = {"A": [], "B": []}
    errors: list[BaseException] = []

    def session(s: str) -> None:
        try:
            for i in range(5):
                state = {"lm": {"model": "dummy", "prefix": s}}
                results[s].append(
                    execute(reg, {"question": f"{s}{i}"}, state, session=s, program="two")[0]
                )
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)
            if TwoStep.barrier is not None:
                TwoStep.barrier.abort()

    threads = [threading.Thread(target=session, args=(s,)) for s in ("A", "B")]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        TwoStep.barrier = None
    assert not errors, errors
    for s in ("A", "B"):
        assert results[s] == [
            {"first": f"{s} answer to: {s}{i}", "second": f"{s} answer to: {s}{i}"}
            for i in range(5)
        ]
    assert dspy.settings.lm is None  # nothing process-global was set


@needs_dspy
def test_worker_environment_default_lm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEFLEET_LM_MODEL", "dummy")
    reg = ProgramRegistry()
    assert execute(reg, {"question": "q"}, None, QA)[0] == {"answer": "dummy answer to: q"}
    spec_lm = {**QA, "lm": {"prefix": "spec"}}
    assert execute(reg, {"question": "q"}, {"lm": {"model": "dummy", "prefix": "sess"}}, spec_lm)[
        0
    ] == {"answer": "spec answer to: q"}


@needs_dspy
def test_dummy_follows_the_json_adapter_too() -> None:
    lm = dspy_kind.dummy_lm_class(dspy)("J")
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        out = dspy.Predict("question -> answer, n: int")(question="q")
    assert (out.answer, out.n) == ("J answer to: q", 1)


# ---------------------------------------------------------------- state


def teach(reg: ProgramRegistry, demos: Any, state: dict[str, Any], **kw: Any) -> Any:
    return execute(reg, {"__demos__": demos}, state, **kw)


@needs_dspy
def test_demos_change_state_that_round_trips_into_a_fresh_registry() -> None:
    worker_a = ProgramRegistry()
    value, state = teach(worker_a, [{"question": "2+2?", "answer": "4"}], DUMMY, spec=QA)
    assert value == {"demos": {"self": 1}}
    assert state is not None and state["lm"] == DUMMY["lm"]
    entry = state["_programs"]["qa"]
    assert set(entry) == {"spec", "dump"}
    assert entry["dump"]["demos"] == [{"question": "2+2?", "answer": "4"}]
    # The dummy answers a question it has a demo for with the demo's answer.
    assert execute(worker_a, {"question": "2+2?"}, state)[0] == {"answer": "4"}
    # A fresh worker builds the program and loads the state that came with the call.
    worker_b = ProgramRegistry()
    value, unchanged = execute(worker_b, {"question": "2+2?"}, state, QA)
    assert value == {"answer": "4"} and unchanged is None
    # Without it, the same program knows nothing.
    assert execute(ProgramRegistry(), {"question": "2+2?"}, DUMMY, QA)[0] == {
        "answer": "dummy answer to: 2+2?"
    }


@needs_dspy
def test_stale_cached_program_catches_up_with_the_session_state() -> None:
    worker_a, worker_b = ProgramRegistry(), ProgramRegistry()
    _, s1 = teach(worker_a, [{"question": "a?", "answer": "A"}], DUMMY, spec=QA)
    _, s2 = teach(worker_b, [{"question": "b?", "answer": "B"}], s1, spec=QA)  # moved to B
    assert s2 is not None
    assert [d["answer"] for d in s2["_programs"]["qa"]["dump"]["demos"]] == ["A", "B"]
    # Back on A, whose cached program has only the first demo.
    assert execute(worker_a, {"question": "b?"}, s2)[0] == {"answer": "B"}
    # A session state without the entry (e.g. reset) resets the cached program.
    assert execute(worker_a, {"question": "b?"}, DUMMY)[0] == {"answer": "dummy answer to: b?"}


@needs_dspy
def test_chain_of_thought_demos_and_named_predictors() -> None:
    reg = ProgramRegistry()
    demo = {"question": "x?", "reasoning": "because", "answer": "X"}
    value, state = teach(reg, {"predict": [demo]}, DUMMY, spec=COT)
    assert value == {"demos": {"predict": 1}}
    assert execute(ProgramRegistry(), {"question": "x?"}, state, COT)[0] == {
        "reasoning": "because",
        "answer": "X",
    }
    err = error_of(reg, {"__demos__": {"nope": []}}, DUMMY)
    assert "no predictor named 'nope'" in err.message and "predict" in err.message


@needs_dspy
def test_teach_and_run_in_one_call() -> None:
    reg = ProgramRegistry()
    args = {"__demos__": [{"question": "q", "answer": "taught"}], "question": "q"}
    value, state = execute(reg, args, DUMMY, QA)
    assert value == {"answer": "taught"}
    assert state is not None and len(state["_programs"]["qa"]["dump"]["demos"]) == 1


@needs_dspy
@pytest.mark.parametrize(
    ("demos", "needle"),
    [
        ("q", "must be a list of demo maps"),
        ([{}], "demo 0 must be a non-empty map"),
        ([{"question": "q", "answr": "a"}], "demo 0 has field(s) 'answr'"),
        ({"self": "x"}, "must be a list of demo maps"),
    ],
)
def test_bad_demos(demos: Any, needle: str) -> None:
    err = error_of(ProgramRegistry(), {"__demos__": demos}, DUMMY, QA)
    assert err.error_type == "program_error" and needle in err.message


@needs_dspy
def test_failed_call_changes_nothing() -> None:
    reg = ProgramRegistry()
    _, state = teach(reg, [{"question": "a?", "answer": "A"}], DUMMY, spec=QA)
    assert state is not None
    # Teaches a second demo, then fails on a missing input: no state comes
    # back, and the cached module drops the demo too.
    bad = {"__demos__": [{"question": "b?", "answer": "B"}], "wrong": 1}
    assert error_of(reg, bad, state).error_type == "program_error"
    assert reg.get("s", "qa").module.demos == [{"question": "a?", "answer": "A"}]  # type: ignore[union-attr]
    assert execute(reg, {"question": "b?"}, state)[0] == {"answer": "dummy answer to: b?"}


@needs_dspy
def test_state_of_another_spec_is_not_loaded() -> None:
    reg = ProgramRegistry()
    _, state = teach(reg, [{"question": "a?", "answer": "A"}], DUMMY, spec=QA)
    assert state is not None
    new_spec = {
        "kind": "dspy",
        "signature": {"inputs": ["question"], "outputs": ["answer"], "instructions": "New rules."},
    }
    value, after = execute(reg, {"question": "a?"}, state, new_spec)
    assert value == {"answer": "dummy answer to: a?"}  # the old demo is not applied
    assert after is not None and "_programs" not in after  # and the stale dump is dropped
    assert reg.get("s", "qa").module.signature.instructions == "New rules."  # type: ignore[union-attr]


@needs_dspy
def test_corrupt_saved_state_is_reported() -> None:
    reg = ProgramRegistry()
    fp = dspy_kind.spec_fingerprint(QA)
    state = {**DUMMY, "_programs": {"qa": {"spec": fp, "dump": {"demos": "garbage"}}}}
    err = error_of(reg, {"question": "q"}, state, QA)
    assert err.error_type == "program_error" and "_programs.qa" in err.message
    assert execute(reg, {"question": "q"}, DUMMY)[0] == {"answer": "dummy answer to: q"}


@needs_dspy
def test_other_programs_entries_are_left_alone() -> None:
    reg = ProgramRegistry()
    state = {**DUMMY, "_programs": {"other": {"x": 1}}}
    _, after = teach(reg, [{"question": "q", "answer": "a"}], state, spec=QA)
    assert after is not None and after["_programs"]["other"] == {"x": 1}
    assert set(after["_programs"]) == {"other", "qa"}


# ---------------------------------------------------------------- dspy optional


def test_missing_dspy_is_an_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dspy", None)  # import dspy -> ImportError
    assert "dspy" not in available_kinds()
    assert "callable" in available_kinds()
    with pytest.raises(ProgramError) as info:
        ProgramRegistry().create("s", "p", QA)
    assert info.value.error_type == "invalid_program"
    assert "pip install 'snakefleet[dspy]'" in info.value.message
    assert "'dspy' package" in info.value.message


def test_caps_advertise_dspy_only_when_installed() -> None:
    assert ("dspy" in available_kinds()) == HAVE_DSPY


def test_worker_start_does_not_import_dspy() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import snakefleet.worker, snakefleet.examples"],
        capture_output=True,
        text=True,
        env=worker_env(),
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "snakefleet.worker" in proc.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert not [m for m in imported if m.split(".")[0] in ("dspy", "litellm")]
    assert "snakefleet.dspy_kind" not in imported


@needs_dspy
def test_importing_dspy_starts_no_thread() -> None:
    """What makes preloading dspy in the zygote (then forking) safe."""
    code = (
        "import threading, dspy, snakefleet.dspy_kind, snakefleet.examples as e; e.QABot;"
        "print(threading.active_count(), 'cache' in vars(dspy))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=worker_env(), timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "False"]  # one thread; response cache not built yet


# ---------------------------------------------------------------- worker subprocess


@needs_dspy
def test_worker_subprocess_end_to_end() -> None:
    w = WorkerProc(worker_id="w-dspy")
    try:
        assert w.ready()["caps"] == ["callable", "dspy"]
        loaded = {"kind": "callable", "entry": "snakefleet.examples:loaded"}
        r = w.call("execute_program", program="loaded", spec=loaded, args={"module": "dspy"})
        assert r["value"] is False  # not imported at start
        created = w.call("create_program", program="qa", spec=QA)
        assert created["ok"] is True and created["value"] == {"program": "qa", "kind": "dspy"}
        r = w.call("execute_program", program="loaded", args={"module": "dspy"})
        assert r["value"] is True

        r = w.call(
            "execute_program", program="qa", args={"question": "What is DSPex?"}, state=DUMMY
        )
        assert r["ok"] is True and r["value"] == {"answer": "dummy answer to: What is DSPex?"}
        assert "state" not in r

        # Interleaved sessions with different LMs, pipelined in one write.
        frames = [
            w.call_frame(
                "execute_program",
                s,
                program="qa",
                spec=QA,
                args={"question": f"q{i}"},
                state={"lm": {"model": "dummy", "prefix": s}},
            )
            for i in range(4)
            for s in ("A", "B")
        ]
        w.send(*frames)
        for frame in frames:
            reply = w.recv(30)
            assert reply["seq"] == frame["seq"] and reply["ok"] is True, reply
            assert reply["value"] == {
                "answer": f"{frame['session']} answer to: {frame['args']['question']}"
            }

        r = w.call(
            "execute_program", program="cot", spec=COT, args={"question": "Why?"}, state=DUMMY
        )
        assert r["value"]["reasoning"] == "dummy reasoning to: Why?"
        r = w.call(
            "execute_program", program="bot", spec=QABOT, args={"question": "hi"}, state=DUMMY
        )
        assert r["value"]["answered_by"] == "QABot"

        # Errors are typed results; the worker keeps serving.
        bad = w.call("create_program", program="bad", spec={"kind": "dspy", "signature": "a b"})
        assert bad["ok"] is False and bad["error"]["type"] == "invalid_program"
        assert "invalid signature 'a b'" in bad["error"]["message"]
        assert bad["error"]["field"] == "spec.signature"
        bad = w.call("create_program", program="bad", spec={**QA, "module": "Nope"})
        assert bad["error"]["type"] == "invalid_program" and "'Nope'" in bad["error"]["message"]
        missing = w.call("execute_program", program="qa", args={"q": 1}, state=DUMMY)
        assert missing["error"]["type"] == "program_error"
        assert "missing input field(s) 'question'" in missing["error"]["message"]
        no_lm = w.call("execute_program", program="qa", args={"question": "q"})
        assert no_lm["error"]["type"] == "program_error"
        assert "no LM configured" in no_lm["error"]["message"]

        # Teaching returns the new session state ...
        taught = w.call(
            "execute_program",
            program="qa",
            args={"__demos__": [{"question": "2+2?", "answer": "4"}]},
            state=DUMMY,
        )
        assert taught["ok"] is True and taught["value"] == {"demos": {"self": 1}}
        state = taught["state"]
        assert state["_programs"]["qa"]["dump"]["demos"] == [{"question": "2+2?", "answer": "4"}]
    finally:
        w.kill()

    # ... which a fresh worker process, building the program from its spec, loads.
    w2 = WorkerProc(worker_id="w-dspy-2")
    try:
        w2.ready()
        r = w2.call(
            "execute_program", program="qa", spec=QA, args={"question": "2+2?"}, state=state
        )
        assert r["ok"] is True and r["value"] == {"answer": "4"} and "state" not in r
        r = w2.call("execute_program", program="qa", args={"question": "2+2?"}, state=DUMMY)
        assert r["value"] == {"answer": "dummy answer to: 2+2?"}
        assert "sk-" not in w2.stderr_text()
    finally:
        w2.kill()


@needs_dspy
def test_worker_subprocess_uses_the_environment_lm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEFLEET_LM_MODEL", "dummy")
    w = WorkerProc(worker_id="w-env")
    try:
        w.ready()
        r = w.call("execute_program", program="qa", spec=QA, args={"question": "env?"})
        assert r["value"] == {"answer": "dummy answer to: env?"}
        r = w.call(
            "execute_program",
            program="qa",
            args={"question": "env?"},
            state={"lm": {"model": "dummy", "prefix": "session"}},
        )
        assert r["value"] == {"answer": "session answer to: env?"}
    finally:
        w.kill()


# ---------------------------------------------------------------- zygote

ZYGOTE_DRIVER = r"""
import array, ctypes, json, os, select, socket, subprocess, sys
from snakefleet.codec import FrameReader, encode_frame

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
calls = json.loads(sys.argv[1])
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
zygote = subprocess.Popen(
    [sys.executable, "-m", "snakefleet.zygote", "--preload", "dspy",
     "--control-fd", str(theirs.fileno()), "--supervisor-pid", str(os.getpid())],
    pass_fds=[theirs.fileno()], stdout=sys.stderr)
theirs.close()
ours.settimeout(60)
ready = ours.recv(256).decode()
assert ready.startswith("ready "), ready
in_r, in_w = os.pipe()
out_r, out_w = os.pipe()
fds = array.array("i", [in_r, out_w, 2])
ours.sendmsg([b"spawn w-zyg 16777216"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
spawned = ours.recv(256).decode()
assert spawned.startswith("spawned "), spawned
os.close(in_r)
os.close(out_w)
reader = FrameReader()

def recv():
    while True:
        frame = reader.get_frame()
        if frame is not None:
            return frame
        ready_fds, _, _ = select.select([out_r], [], [], 30)
        assert ready_fds, "no frame within 30s"
        data = os.read(out_r, 65536)
        assert data, "worker closed its output"
        reader.feed(data)

frames = [recv()]
for seq, call in enumerate(calls, 1):
    os.write(in_w, encode_frame({"t": "call", "v": 1, "seq": seq, **call}))
    frames.append(recv())
os.close(in_w)
_, status = os.waitpid(int(spawned.split()[2]), 0)
ours.close()
zygote.wait(10)
print(json.dumps({"ready": ready, "frames": frames, "status": status}, default=repr))
"""


@needs_dspy
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the zygote needs Linux prctl")
def test_zygote_preloaded_dspy_serves_forked_workers(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(
        "import threading\ndef threads(ctx):\n    return threading.active_count()\n"
    )
    probe = {"kind": "callable", "entry": "probe:threads"}
    loaded = {"kind": "callable", "entry": "snakefleet.examples:loaded"}
    dummy_b = {"lm": {"model": "dummy", "prefix": "B"}}
    calls: list[dict[str, Any]] = [
        {
            "op": "execute_program",
            "session": "s",
            "program": "l",
            "spec": loaded,
            "args": {"module": "dspy"},
        },
        {"op": "execute_program", "session": "s", "program": "t", "spec": probe, "args": {}},
        {
            "op": "execute_program",
            "session": "A",
            "program": "qa",
            "spec": QA,
            "args": {"question": "fork?"},
            "state": DUMMY,
        },
        {
            "op": "execute_program",
            "session": "B",
            "program": "cot",
            "spec": COT,
            "args": {"question": "fork?"},
            "state": dummy_b,
        },
        {
            "op": "execute_program",
            "session": "A",
            "program": "qa",
            "args": {"__demos__": [{"question": "z?", "answer": "Z"}]},
            "state": DUMMY,
        },
        {"op": "execute_program", "session": "s", "program": "t", "args": {}},
    ]
    proc = subprocess.run(
        [sys.executable, "-c", ZYGOTE_DRIVER, json.dumps(calls)],
        capture_output=True,
        text=True,
        env=worker_env(str(tmp_path)),
        timeout=90,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    ready, *results = out["frames"]
    assert ready["t"] == "ready" and ready["caps"] == ["callable", "dspy"]
    assert all(r["ok"] for r in results), results
    values = [r["value"] for r in results]
    assert values[0] is True  # preloaded by the zygote
    assert values[1] == 1  # a single thread in the forked worker
    assert values[2] == {"answer": "dummy answer to: fork?"}
    assert values[3] == {"reasoning": "B reasoning to: fork?", "answer": "B answer to: fork?"}
    assert values[4] == {"demos": {"self": 1}}
    assert results[4]["state"]["_programs"]["qa"]["dump"]["demos"] == [
        {"question": "z?", "answer": "Z"}
    ]
    assert values[5] == 1  # still one thread after running dspy programs
    assert out["status"] == 0
    assert "event=ready" in proc.stderr and "preload=dspy" in proc.stderr
