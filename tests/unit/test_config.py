"""YAML loading, both instantiation styles, interpolation, overrides and their errors."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
from testkit import TESTS

from itwinai_ray.config import instantiate as instantiate_module
from itwinai_ray.config.instantiate import ITWINAI_ALIASES, instantiate, resolve_target
from itwinai_ray.config.loader import load_config, load_pipeline, load_yaml, parse_steps
from itwinai_ray.config.overrides import apply_overrides
from itwinai_ray.config.resolvers import RESOLVERS, register_resolvers
from itwinai_ray.errors import ConfigurationError
from itwinai_ray.itwinai_compat import real_itwinai_available

CONFIGS = TESTS / "configs"


@pytest.fixture(autouse=True)
def _in_configs_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """toy_components.py lives in tests/configs and resolves because cwd is on sys.path."""
    monkeypatch.chdir(CONFIGS)


def _write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ styles
def test_jsonargparse_style() -> None:
    pipe = load_pipeline("jsonargparse_style.yaml")
    assert type(pipe).__name__ == "ToyPipeline" and pipe.name == "jsonargparse"
    assert [type(s).__name__ for s in pipe.steps] == ["ToyGetter", "ToyDoubler", "ToyPrinter"]
    assert pipe.steps[0].n == 4 and pipe.steps[0].scale == 1.5
    assert pipe.execute() == [0.0, 3.0, 6.0, 9.0]


def test_hydra_style_with_dotted_pipe_key() -> None:
    pipe = load_pipeline("hydra_style.yaml", pipe_key="pipelines.training")
    assert list(pipe.steps) == ["getter", "doubler", "printer"]
    assert pipe.steps["doubler"].factor == 10
    assert pipe.steps["printer"].extra == {"out_dir": str(CONFIGS / "outputs"), "lr": 1e-3}
    assert pipe.execute() == [0, 10, 20]


def test_mixed_styles_at_any_depth() -> None:
    pipe = load_pipeline("mixed_style.yaml")
    getter, doubler, printer = pipe.steps
    assert getter.n == 8 and doubler.factor == 3
    extra = printer.extra
    assert extra["config"] == {"lr": 1e-3, "layers": [8, 4]}
    assert isinstance(extra["partial"], functools.partial)
    assert extra["partial"](n=2).execute() == [0.0, 2.0]
    assert extra["plain_list"][:2] == [1, "two"]
    assert type(extra["plain_list"][2]).__name__ == "ToyDoubler"


def test_plain_containers_and_scalars_are_kept() -> None:
    node = {"a": [1, "x", {"b": None}], "c": "toy_components.ToyGetter"}
    assert instantiate(node) == node


def test_hydra_positional_args() -> None:
    obj = instantiate({"_target_": "toy_components.ToyGetter", "_args_": [3], "scale": 2})
    assert obj.execute() == [0, 2, 4]


def test_another_pipeline_in_the_same_file() -> None:
    assert load_pipeline("jsonargparse_style.yaml", pipe_key="other_pipeline").execute() == [0, 1]


# ------------------------------------------------------------------------ interpolation
def test_interpolation_and_cwd_resolver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = _write(tmp_path, "bs: 16\nlr: 1e-3\nx: {bs: '${bs}', here: '${itwinai.cwd:}',"
                           " data: '${itwinai.cwd:data/train}', lr: '${lr}'}\n")
    x = load_config(cfg)["x"]
    assert x == {"bs": 16, "here": os.getcwd(), "lr": 1e-3,
                 "data": os.path.join(os.getcwd(), "data/train")}


def test_register_resolvers_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row of RESOLVERS is registered, and registering again (each load does) neither
    fails nor keeps an old function."""
    from omegaconf import OmegaConf

    monkeypatch.setitem(RESOLVERS, "test.twice", lambda x: 2 * x)
    try:
        register_resolvers()
        register_resolvers()
        assert OmegaConf.create({"a": "${test.twice:21}"}).a == 42
        monkeypatch.setitem(RESOLVERS, "test.twice", lambda x: 3 * x)
        register_resolvers()
        assert OmegaConf.create({"a": "${test.twice:21}"}).a == 63
        assert OmegaConf.create({"h": "${itwinai.cwd:}"}).h == os.getcwd()
    finally:
        OmegaConf.clear_resolver("test.twice")


def test_unresolvable_interpolation_names_the_key(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "a: {b: '${nope}'}\n")
    with pytest.raises(ConfigurationError, match=r"at 'a\.b'.*nope"):
        load_config(cfg)


def test_broken_reference_in_another_pipeline_does_not_matter(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "p: {_target_: toy_components.ToyGetter, n: 2}\n"
                           "q: {_target_: toy_components.ToyGetter, n: '${missing}'}\n")
    assert load_pipeline(cfg, pipe_key="p").execute() == [0, 1]


# ---------------------------------------------------------------------------- overrides
def test_overrides_types_and_propagation() -> None:
    cfg = load_config("jsonargparse_style.yaml", [
        "n=7", "scale=1e-3", "training_pipeline.init_args.steps.2.init_args.prefix=[1,2]",
        "training_pipeline.init_args.steps[0].init_args.scale=null",
    ])
    steps = cfg["training_pipeline"]["init_args"]["steps"]
    assert steps[0]["init_args"] == {"n": 7, "scale": None}
    assert cfg["scale"] == 1e-3 and isinstance(cfg["scale"], float)
    assert steps[2]["init_args"]["prefix"] == [1, 2]


def test_override_of_top_level_variable_propagates_into_pipeline() -> None:
    pipe = load_pipeline("jsonargparse_style.yaml", overrides=["n=2", "scale=2"])
    assert pipe.execute() == [0, 4]


def test_add_and_delete_keys() -> None:
    raw = {"a": {"b": 1, "c": [1, 2]}}
    out = apply_overrides(raw, ["+a.d=x", "+new.deep.key=1", "~a.b", "a.c.1=5", "++a.e=2"])
    assert out == {"a": {"c": [1, 5], "d": "x", "e": 2}, "new": {"deep": {"key": 1}}}
    assert raw == {"a": {"b": 1, "c": [1, 2]}}  # input untouched


def test_missing_key_names_parent_and_suggestion() -> None:
    with pytest.raises(ConfigurationError,
                       match=r"key 'factr' does not exist in 'a\.b'.*Did you mean 'factor'"):
        apply_overrides({"a": {"b": {"factor": 1}}}, ["a.b.factr=2"])
    with pytest.raises(ConfigurationError, match=r"'zz' does not exist in '<root>'"):
        apply_overrides({"a": 1}, ["zz.y=2"])


@pytest.mark.parametrize(("override", "pattern"), [
    ("a.b", r"Malformed override 'a\.b'.*key=value"),
    ("=3", r"Malformed override"),
    ("+a.b=2", r"already exists"),
    ("~a.zz", r"'zz' does not exist"),
    ("a.c.5=1", r"index 5 is out of range.*2 items"),
    ("a.c.x=1", r"is a list of 2 items"),
    ("a.b.x=1", r"is a value"),
])
def test_bad_overrides(override: str, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        apply_overrides({"a": {"b": 1, "c": [1, 2]}}, [override])


# ---------------------------------------------------------------------- bad input files
def test_missing_file_names_absolute_path_and_cwd(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError,
                       match=rf"not found: {CONFIGS / 'nope.yaml'} \(current directory"):
        load_yaml("nope.yaml")


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "a: 1\nb:\n  c: [1, 2\n  d: 3\n")
    with pytest.raises(ConfigurationError, match=r"YAML syntax error in .*cfg\.yaml, line \d+, "
                                                 r"column \d+"):
        load_yaml(cfg)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        load_yaml(_write(tmp_path, "- 1\n- 2\n"))


def test_unknown_pipe_key_lists_pipelines_and_closest() -> None:
    with pytest.raises(ConfigurationError, match=r"'training_pipe' not found.*training_pipeline, "
                                                 r"other_pipeline.*Did you mean "
                                                 r"'training_pipeline'"):
        load_pipeline("jsonargparse_style.yaml", pipe_key="training_pipe")


def test_class_path_that_does_not_import_names_path_and_location(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "training_pipeline:\n  class_path: toy_components.ToyPipeline\n"
                           "  init_args:\n    steps:\n      - class_path: toy_components.ToyGetter\n"
                           "        init_args: {n: 1}\n      - class_path: no_such_pkg.mod.Cls\n")
    with pytest.raises(ConfigurationError, match=r"training_pipeline\.init_args\.steps\[1\]\."
                                                 r"class_path.*'no_such_pkg\.mod\.Cls'.*"
                                                 r"No module named 'no_such_pkg'"):
        load_pipeline(cfg)


def test_missing_attribute_suggests_the_closest() -> None:
    with pytest.raises(ConfigurationError, match=r"no attribute 'ToyGeter'.*'ToyGetter'"):
        resolve_target("toy_components.ToyGeter", "x")


def test_wrong_init_arg_names_argument_class_location_and_suggestion() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_pipeline("jsonargparse_style.yaml",
                      overrides=["+training_pipeline.init_args.steps.1.init_args.factr=3"])
    msg = str(info.value)
    for part in ("training_pipeline.init_args.steps[1]", "toy_components.ToyDoubler",
                 "unexpected argument 'factr'", "Accepted arguments: factor",
                 "Did you mean 'factor'"):
        assert part in msg


def test_missing_required_argument() -> None:
    with pytest.raises(ConfigurationError, match=r"At 'g'.*missing required argument\(s\): n"):
        instantiate({"_target_": "toy_components.ToyGetter"}, location="g")


def test_constructor_error_is_wrapped_with_location() -> None:
    with pytest.raises(ConfigurationError, match=r"At 'p\.x'.*ValueError: value 3") as info:
        instantiate({"x": {"class_path": "toy_components.Failing", "init_args": {"value": 3}}},
                    location="p")
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize(("node", "pattern"), [
    ({"class_path": "toy_components.ToyGetter", "n": 1}, r"next to 'class_path'"),
    ({"class_path": "a.B", "_target_": "a.B"}, r"both 'class_path' and '_target_'"),
    ({"_target_": "toy_components.ToyGetter", "_recursive_": False}, r"_recursive_"),
    ({"_target_": "toy_components.ToyGetter", "_partial_": "yes"}, r"'_partial_' must be"),
    ({"class_path": "toy_components.ToyGetter", "init_args": [1]}, r"must be a mapping"),
    ({"_target_": 3}, r"dotted import path"),
])
def test_malformed_nodes(node: dict, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        instantiate(node)


# ------------------------------------------------------------------------------- steps
@pytest.mark.parametrize(("spec", "expected"), [
    ("0:2", slice(0, 2)), (":-1", slice(None, -1)), ("1:", slice(1, None)),
    ("::2", slice(None, None, 2)),
    (2, 2), ("-1", -1), ("printer", "printer"), (None, None),
])
def test_parse_steps(spec: object, expected: object) -> None:
    assert parse_steps(spec) == expected  # type: ignore[arg-type]


def test_steps_selection() -> None:
    assert len(load_pipeline("jsonargparse_style.yaml", steps="0:2").steps) == 2
    assert load_pipeline("jsonargparse_style.yaml", steps=":-1").execute() == [0.0, 3.0, 6.0, 9.0]
    assert load_pipeline("jsonargparse_style.yaml", steps=0).execute() == [0.0, 1.5, 3.0, 4.5]
    named = load_pipeline("hydra_style.yaml", pipe_key="pipelines.training", steps="getter")
    assert list(named.steps) == ["getter"]
    assert list(load_pipeline("hydra_style.yaml", "pipelines.training", steps="1:").steps) == [
        "doubler", "printer"]
    by_class = load_pipeline("jsonargparse_style.yaml", steps="ToyDoubler").steps
    assert [type(s).__name__ for s in by_class] == ["ToyDoubler"]


@pytest.mark.parametrize(("file", "key", "spec", "pattern"), [
    ("jsonargparse_style.yaml", "training_pipeline", "1:x", r"Invalid steps '1:x'"),
    ("jsonargparse_style.yaml", "training_pipeline", "0:1:0", r"cannot be zero"),
    ("jsonargparse_style.yaml", "training_pipeline", "5", r"index 5 is out of range.*3 steps"),
    ("jsonargparse_style.yaml", "training_pipeline", "5:", r"selects no step"),
    ("jsonargparse_style.yaml", "training_pipeline", "ToyPrintr",
     r"no step named 'ToyPrintr'.*a list whose steps are named ToyGetter.*'ToyPrinter'"),
    ("hydra_style.yaml", "pipelines.training", "printr", r"no step named 'printr'.*'printer'"),
    ("jsonargparse_style.yaml", "training_pipeline", 1.5, r"Invalid steps 1\.5"),
])
def test_bad_steps(file: str, key: str, spec: object, pattern: str) -> None:
    with pytest.raises(ConfigurationError, match=pattern):
        load_pipeline(file, pipe_key=key, steps=spec)  # type: ignore[arg-type]


def test_pipe_key_that_is_not_a_pipeline(tmp_path: Path) -> None:
    cfg = _write(tmp_path, "p: {_target_: toy_components.make_config, lr: 1, layers: []}\n")
    with pytest.raises(ConfigurationError, match=r"no execute\(\) method"):
        load_pipeline(cfg, pipe_key="p")


# ------------------------------------------------------------------- module resolution
def test_user_module_in_cwd_resolves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_cwd_trainer_mod.py").write_text(
        "class MyTrainer:\n    def __init__(self, epochs: int) -> None:\n"
        "        self.epochs = epochs\n")
    monkeypatch.chdir(tmp_path)
    obj = instantiate({"_target_": "my_cwd_trainer_mod.MyTrainer", "epochs": 3})
    assert obj.epochs == 3
    assert str(tmp_path) not in os.sys.path  # removed again after resolution


def test_itwinai_alias_table_mechanism(monkeypatch: pytest.MonkeyPatch) -> None:
    if real_itwinai_available():
        pytest.skip("itwinai is installed: its own classes are used")
    monkeypatch.setitem(ITWINAI_ALIASES, "itwinai.fake.Getter", "toy_components.ToyGetter")
    assert instantiate({"_target_": "itwinai.fake.Getter", "n": 2}).execute() == [0, 1]
    with pytest.raises(ConfigurationError, match=r"itwinai is not installed.*no equivalent"):
        instantiate({"_target_": "itwinai.nothing.Here"})
    assert instantiate_module.ITWINAI_ALIASES["itwinai.pipeline.Pipeline"] == (
        "itwinai_ray.pipeline.Pipeline")


@pytest.mark.parametrize(("itwinai_path", "module"), [
    ("itwinai.pipeline.Pipeline", "itwinai_ray.pipeline"),
    ("itwinai.components.DataGetter", "itwinai_ray.components"),
    ("itwinai.torch.config.TrainingConfiguration", "itwinai_ray.config.training"),
    ("itwinai.torch.trainer.TorchTrainer", "itwinai_ray.trainer"),
    ("itwinai.loggers.ConsoleLogger", "itwinai_ray.loggers"),
])
def test_itwinai_aliases_resolve_to_this_package(itwinai_path: str, module: str) -> None:
    if real_itwinai_available():
        pytest.skip("itwinai is installed: its own classes are used")
    pytest.importorskip(module)
    target = ITWINAI_ALIASES[itwinai_path]
    obj = resolve_target(itwinai_path)
    assert f"{obj.__module__}.{obj.__qualname__}".startswith("itwinai_ray.")
    assert obj.__name__ == target.rsplit(".", 1)[1]


def test_itwinai_config_runs_on_this_package_pipeline() -> None:
    if real_itwinai_available():
        pytest.skip("itwinai is installed: its own classes are used")
    pipeline_module = pytest.importorskip("itwinai_ray.pipeline")
    pipe = load_pipeline("itwinai_style.yaml")
    assert isinstance(pipe, pipeline_module.Pipeline) and len(pipe) == 3
    assert pipe.execute() == [0, 2, 4]
    assert load_pipeline("itwinai_style.yaml", steps="0:2").execute() == [0, 2, 4]
