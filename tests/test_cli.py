"""The command line: search/show/pareto/listings, config + flag overrides, one-line errors."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from tests.helpers import run_cli




@pytest.fixture
def table_config(tmp_path, shared_benchmarks):
    path = tmp_path / "run.yaml"
    path.write_text(textwrap.dedent(f"""
        space: nb201
        controller: {{name: evolution, population: 10, sample_size: 3}}
        evaluators:
          - {{name: nb201-table, table: {shared_benchmarks / 'nb201_cifar10.csv'}}}
        objectives: ["valid_acc:max"]
        constraints: []
        budget: 15
        seed: 0
        run_dir: {tmp_path / 'runs' / 'evo'}
    """))
    return path


def test_search_show_pareto(capsys, tmp_path, table_config):
    code, out, err = run_cli(capsys, "search", "--config", str(table_config), "--budget", "20", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "evo"
    assert "20 trial(s)" in out and "best valid_acc" in out
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["budget"] == 20 and cfg["controller"] == {"name": "evolution", "population": 10, "sample_size": 3}
    assert (run_dir / "study.db").is_file() and (run_dir / "front.png").is_file() and (run_dir / "tb").is_dir()

    code, out, err = run_cli(capsys, "show", str(run_dir), "--top", "3")
    assert code == 0, err
    assert "best valid_acc" in out and "Pareto front (1)" in out and "test_acc" in out

    for suffix in ("png", "html"):
        target = tmp_path / f"front.{suffix}"
        code, out, err = run_cli(capsys, "pareto", str(run_dir), "--out", str(target))
        assert code == 0, err
        assert target.stat().st_size > 1000
    code, out, err = run_cli(capsys, "pareto", str(run_dir), "--out", str(tmp_path / "f.png"),
                         "--objective", "valid_acc:max", "--objective", "params_M:min", "--objective", "flops_M:min")
    assert code == 0, err


def test_show_and_pareto_read_the_run_they_are_run_in(capsys, tmp_path, table_config, monkeypatch):
    assert run_cli(capsys, "search", "--config", str(table_config), "--no-progress")[0] == 0
    monkeypatch.chdir(tmp_path / "runs" / "evo")  # "." names no study: the folder's own name does
    code, out, err = run_cli(capsys, "show", ".", "--top", "3")
    assert code == 0 and "best valid_acc" in out, err
    code, out, err = run_cli(capsys, "pareto", ".", "--out", str(tmp_path / "here.png"))
    assert code == 0 and (tmp_path / "here.png").stat().st_size > 1000, err


def test_resume_extends_the_budget(capsys, tmp_path, table_config):
    assert run_cli(capsys, "search", "--config", str(table_config), "--no-progress")[0] == 0
    run_dir = tmp_path / "runs" / "evo"
    code, out, err = run_cli(capsys, "search", "--resume", str(run_dir), "--budget", "25", "--no-progress")
    assert code == 0, err
    assert "resumed 15 trial(s)" in out and "25 trial(s)" in out
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["budget"] == 25


def test_two_objectives_and_a_constraint(capsys, tmp_path, table_config):
    code, out, err = run_cli(capsys, "search", "--config", str(table_config), "--objective", "valid_acc:max",
                         "--objective", "flops_M:min", "--constraint", "flops_M<=100", "--controller", "nsga2",
                         "--budget", "30", "--no-progress")
    assert code == 0, err
    assert "Pareto front:" in out
    code, out, err = run_cli(capsys, "show", str(tmp_path / "runs" / "evo"), "--top", "0")
    assert code == 0 and "infeasible" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "0"], "budget: expected a positive integer"),
        (["--objective", "valid_acc"], "bad objective 'valid_acc': expected METRIC:max or METRIC:min"),
        (["--constraint", "latency<twenty"], "bad constraint"),
        (["--controller", "anneal"], "unknown controller 'anneal'; choose from: random, evolution, tpe, nsga2"),
        (["--space", "nb301"], "unknown space 'nb301'; choose from: nb201"),
        (["--evaluator", "nb201-tabel"], "unknown evaluator 'nb201-tabel'"),
        (["--set", "controller.populaton=3"], "unknown option(s) ['populaton']; accepted: population, sample_size"),
        (["--objective", "accuracy:max"], "metric 'accuracy' is not produced by the evaluators"),
        (["--objective", "test_acc:max"], "report-only"),
        (["--controller", "no.such.module:Thing"], "cannot import 'no.such.module:Thing'"),
        (["--device", "bogus"], "device 'bogus' is not a device name; accepted here: cpu"),
        (["--device", "cuda:7"], "device 'cuda:7' is not available ("),
        (["--storage", "notaurl"], "--storage notaurl: cannot open the trial store"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(capsys, tmp_path, table_config, args, message):
    code, out, err = run_cli(capsys, "search", "--config", str(table_config), "--no-progress", *args)
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_a_refused_store_leaves_no_folder_the_run_would_have_made(capsys, tmp_path, table_config):
    deep = tmp_path / "a" / "b" / "run"
    code, _, err = run_cli(capsys, "search", "--config", str(table_config), "--run-dir", str(deep),
                           "--storage", "notaurl", "--no-progress")
    assert code == 2 and "--storage notaurl" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "a").exists()


def test_a_copied_run_folder_finds_its_study_and_relative_paths_are_kept_absolute(capsys, tmp_path, table_config,
                                                                                   monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "search", "--config", str(table_config), "--budget", "3", "--storage",
                   "sqlite:///own.db", "--no-progress")[0] == 0
    cfg = yaml.safe_load((tmp_path / "runs" / "evo" / "config.yaml").read_text())
    assert cfg["study_name"] == "evo" and cfg["storage"] == f"sqlite:///{tmp_path / 'own.db'}"
    shutil.copy(cfg["evaluators"][0]["table"], tmp_path / "t.csv")
    assert run_cli(capsys, "search", "--config", str(table_config), "--run-dir", "rel", "--set",
                   "nb201-table.table=t.csv", "--no-progress")[0] == 0
    kept = yaml.safe_load((tmp_path / "rel" / "config.yaml").read_text())["evaluators"][0]["table"]
    assert kept == str(tmp_path / "t.csv")  # a relative evaluator file, written out whole
    monkeypatch.chdir(tmp_path / "runs")  # elsewhere: the store is still found
    assert run_cli(capsys, "show", "evo")[0] == 0
    # a run written before config.yaml kept its study name, copied: the store's one study
    assert run_cli(capsys, "search", "--config", str(table_config), "--run-dir", str(tmp_path / "old"),
                   "--no-progress")[0] == 0
    text = (tmp_path / "old" / "config.yaml").read_text().replace("study_name: old", "study_name: null")
    (tmp_path / "old" / "config.yaml").write_text(text)
    shutil.copytree(tmp_path / "old", tmp_path / "copy")
    code, out, err = run_cli(capsys, "show", str(tmp_path / "copy"))
    assert code == 0 and "best valid_acc" in out, err
    code, out, err = run_cli(capsys, "search", "--resume", str(tmp_path / "copy"), "--budget", "16", "--no-progress")
    assert code == 0 and "16 trial(s)" in out, err


def test_config_files_refuse_a_key_given_twice_and_resume_names_the_refused_flags(capsys, tmp_path, table_config):
    twice = tmp_path / "twice.yaml"
    twice.write_text("space: nb201\nbudget: 2\nbudget: 5\n")
    code, _, err = run_cli(capsys, "search", "--config", str(twice))
    assert code == 2 and "line 3, column 1: the key 'budget' is given twice" in err
    assert run_cli(capsys, "search", "--config", str(table_config), "--no-progress")[0] == 0
    code, _, err = run_cli(capsys, "search", "--resume", str(tmp_path / "runs" / "evo"), "--space", "nb201",
                           "--set", "controller.population=3")
    assert code == 2 and "so --space, --set cannot be given with it" in err
    code, _, err = run_cli(capsys, "show", str(tmp_path / "runs" / "evo"), "--objective", "nosuch:max")
    assert code == 2 and "--objective nosuch: no completed trial" in err and "valid_acc" in err
    code, _, err = run_cli(capsys, "search", "--config", str(table_config), "--mnas-reward", "valid_acc,params_M,-5")
    assert code == 2 and "target must be a positive latency, got -5.0" in err
    code, _, err = run_cli(capsys, "search", "--config", str(tmp_path))
    assert code == 2 and "is a folder; expected a YAML run configuration file" in err
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    code, _, err = run_cli(capsys, "search", "--config", str(tmp_path / "empty.yaml"))
    assert code == 2 and "holds no settings (empty)" in err
    code, _, err = run_cli(capsys, "search", "--config", str(table_config), "--run-dir", "")
    assert code == 2 and "run_dir: empty; give a folder" in err


def test_a_sqlite_file_without_optuna_tables_is_refused_unchanged(capsys, tmp_path, table_config):
    import sqlite3

    assert run_cli(capsys, "search", "--config", str(table_config), "--no-progress")[0] == 0
    db = tmp_path / "runs" / "evo" / "study.db"
    db.unlink()
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE other (a)")
    before = db.read_bytes()
    for args in (("search", "--resume", str(db.parent), "--budget", "30"), ("show", str(db.parent))):
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "without Optuna's tables, not a trial store" in err, err
    assert db.read_bytes() == before


def test_out_files_in_missing_folders_and_bad_measuring_options_are_one_line(capsys, tmp_path, table_config):
    assert run_cli(capsys, "search", "--config", str(table_config), "--no-progress")[0] == 0
    run_dir = str(tmp_path / "runs" / "evo")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder.png").mkdir()
    for out, message in ((tmp_path / "nodir" / "f.png", "nodir does not exist"),
                         (tmp_path / "afile" / "f.png", "is a file, not a folder"),
                         (tmp_path / "folder.png", "is a folder; give a file name"),
                         (f"{tmp_path / 'new.png'}/", "ends in '/', so it names a folder; give a file name"),
                         ("", "--out is empty; give a file name")):
        code, _, err = run_cli(capsys, "pareto", run_dir, "--out", str(out))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "new.png").exists()
    code, _, err = run_cli(capsys, "export", run_dir, "--out", "")
    assert code == 2 and "--out is empty; give a folder" in err and len(err.strip().splitlines()) == 1, err
    for command in ("show", "pareto", "export"):
        code, _, err = run_cli(capsys, command, "")
        assert code == 2 and "RUN_DIR is empty; give a run directory" in err and len(err.strip().splitlines()) == 1, err
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        code, _, err = run_cli(capsys, "export", run_dir, "--out", str(out))
        assert code == 2 and "afile is a file; give a folder" in err and len(err.strip().splitlines()) == 1, err
    for args, message in ((["--in-channels", "0"], "--in-channels 0: expected an integer >= 1"),
                          (["--threads", "-1"], "--threads -1: expected an integer >= 1"),
                          (["--min-run-time", "0"], "--min-run-time 0.0: expected a number of seconds > 0"),
                          (["--out", str(tmp_path / "nodir" / "l.json")], "nodir does not exist"),
                          (["--out", f"{tmp_path / 'l.json'}/"], "ends in '/', so it names a folder")):
        code, _, err = run_cli(capsys, "latency-table", *args)  # refused before anything is measured
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_unknown_config_key(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("space: nb201\nbugdet: 3\n")
    code, _, err = run_cli(capsys, "search", "--config", str(bad))
    assert code == 2 and "unknown key(s) bugdet; accepted: space, controller" in err
    code, _, err = run_cli(capsys, "search", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "config file not found" in err
    code, _, err = run_cli(capsys, "show", str(tmp_path))
    assert code == 2 and "is not a run directory" in err


def test_a_run_path_with_uri_characters_is_read_in_place(capsys, tmp_path, table_config):
    run_dir = tmp_path / "r#1%x"
    code, _, err = run_cli(capsys, "search", "--config", str(table_config), "--run-dir", str(run_dir), "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "show", str(run_dir))
    assert code == 0 and "15 trial(s)" in out, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r#1%x", "run.yaml"]  # no stray database beside it


def test_listings(capsys):
    code, out, _ = run_cli(capsys, "spaces")
    assert code == 0 and "nb201" in out and "decisions" in out
    code, out, _ = run_cli(capsys, "controllers")
    assert code == 0 and all(n in out for n in ("random", "evolution", "tpe", "nsga2"))
    code, out, _ = run_cli(capsys, "evaluators")
    assert code == 0 and "nb201-table" in out and "report-only: test_acc" in out


def test_plugins_from_entry_points(capsys, tmp_path, monkeypatch):
    """A third-party package registers a controller through the automl.controllers group."""
    pkg = tmp_path / "myplugin.py"
    pkg.write_text(textwrap.dedent("""
        from controllers.random_search import RandomSearch

        class Lucky(RandomSearch):
            name = "lucky"
            description = "a plug-in controller"
    """))
    dist = tmp_path / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[automl.controllers]\nlucky = myplugin:Lucky\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from automl import registry

    assert "lucky" in registry.names("controller")
    assert registry.create("controller", "lucky").name == "lucky"
    code, out, _ = run_cli(capsys, "controllers")
    assert "lucky" in out and "a plug-in controller" in out


def test_exponent_floats_are_numbers_in_set_values_and_config_files(tmp_path):
    """PyYAML (YAML 1.1) reads 3e-3 as a string; config files and --set read YAML 1.2 floats."""
    from automl.cli import parse_sets
    from automl.config import RunConfig, load_yaml

    assert load_yaml("{a: 3e-3, b: 1e4, c: -2E+2, d: 1.0.0, e: 5}") == {"a": 0.003, "b": 1e4, "c": -200.0,
                                                                         "d": "1.0.0", "e": 5}
    cfg = RunConfig()
    parse_sets(["controller.arch_lr=3e-3"], cfg)
    assert cfg.controller.options["arch_lr"] == 0.003
    path = tmp_path / "c.yaml"
    path.write_text("space: nb201\ncontroller: {name: darts, arch_lr: 3e-4, w_lr: 2.5e-2}\n")
    assert RunConfig.from_file(path).controller.options == {"arch_lr": 3e-4, "w_lr": 0.025}


def test_quick_defaults_not_used_for_a_component_given_options_are_reported():
    from automl.config import Component, RunConfig
    from search_spaces.seg_hierarchical import SegHierarchicalSpace

    quick = SegHierarchicalSpace.quick_settings["darts"]
    cfg = RunConfig(space=Component("seg-hierarchical"), controller=Component("darts", {"epochs": 1}))
    assert cfg.fill_defaults() == ["controller"]
    assert cfg.space.options == quick["space"] and cfg.controller.options == {"epochs": 1}
    assert cfg.fill_defaults() == ["controller"]  # idempotent
    plain = RunConfig(space=Component("seg-hierarchical"), controller=Component("darts"))
    assert plain.fill_defaults() == [] and plain.controller.options == quick["controller"]


def test_no_quick_leaves_every_component_to_its_own_defaults_and_a_dataset_gets_a_note(tmp_path):
    from automl.cli import quick_on_dataset_note
    from automl.config import Component, RunConfig
    from automl.objectives import SpecError

    cfg = RunConfig(space=Component("seg-hierarchical"), controller=Component("darts"))
    cfg.set("quick", False)
    assert cfg.fill_defaults() == [] and cfg.quick_used() == []
    assert cfg.space.options == {} and cfg.controller.options == {}  # the papers' recipes fill them
    assert [e.name for e in cfg.evaluators] == ["train", "latency"] and cfg.evaluators[0].options == {}
    assert cfg.reference is None and cfg.budget != 1
    quick = RunConfig(space=Component("seg-hierarchical"), controller=Component("darts", {"epochs": 2}))
    quick.fill_defaults()
    assert quick.quick_used() == ["space", "evaluators"] and quick_on_dataset_note(quick) is None  # built-in data
    quick.dataset = "shapes"  # what a run fills in when no --dataset was named: still the demo, no note
    assert quick_on_dataset_note(quick) is None
    quick.set("dataset", "seg-folder:/data/city")
    note = quick_on_dataset_note(quick)
    assert note is not None and "seg-folder:/data/city" in note and "--no-quick" in note
    assert "space: layers=4" in note and "controller:" not in note and "train(epochs=30, batch_size=8" in note
    assert cfg.time_limit is None and quick.time_limit is None  # beside the user's controller options: no limit
    assert "time limit" not in note
    with pytest.raises(SpecError, match="quick: expected true or false"):
        cfg.set("quick", "maybe")
    back = tmp_path / "config.yaml"
    cfg.dump(back)
    assert RunConfig.from_file(back).quick is False


def test_the_quick_time_limit_goes_with_the_quick_controller_and_evaluators():
    from automl.cli import parse_sets, quick_on_dataset_note
    from automl.config import Component, RunConfig

    def filled(*sets: str, **keys) -> RunConfig:
        cfg = RunConfig(space=Component("seg-hierarchical"), controller=Component("darts"))
        for key, value in keys.items():
            cfg.set(key, value)
        parse_sets(list(sets), cfg)
        cfg.fill_defaults()
        return cfg

    assert filled().time_limit == 140.0  # the zero-flag demo
    assert filled("train.epochs=30").time_limit is None  # the user's retrain budget runs whole
    assert filled("latency.min_run_time=1").time_limit is None
    assert filled(time_limit=0).time_limit is None  # 0: no limit
    assert filled("controller.epochs=2").time_limit is None
    assert filled(time_limit=60).time_limit == 60.0 and filled("train.epochs=3", time_limit=60).time_limit == 60.0
    on_data = filled(dataset="seg-folder:/data/city")
    assert "time limit 140 s (--time-limit)" in quick_on_dataset_note(on_data)


def test_a_dumped_config_reads_back_strings_that_look_like_exponent_floats(tmp_path):
    from automl.config import RunConfig

    cfg = RunConfig()
    cfg.run_dir, cfg.study_name = "1e3", "2e5"
    cfg.dump(tmp_path / "config.yaml")
    back = RunConfig.from_file(tmp_path / "config.yaml")
    assert (back.run_dir, back.study_name) == ("1e3", "2e5")


def test_set_order_does_not_change_which_quick_settings_apply():
    from automl.cli import parse_sets
    from automl.config import RunConfig

    def options(sets: list[str]) -> dict:
        cfg = RunConfig()
        cfg.set("space", "seg-hierarchical")
        cfg.set("controller", "darts")
        parse_sets(sets, cfg)
        cfg.fill_defaults()
        return cfg.controller.options

    a = options(["train.epochs=1", "controller.epochs=2"])
    assert a == options(["controller.epochs=2", "train.epochs=1"]) == {"epochs": 2}


def test_the_summary_line_breaks_the_time_down_only_beside_other_phases():
    from automl.cli import _phases

    assert _phases({"set-up": 0.01, "trials": 4.5}) == ""  # the trials alone: the total says it
    assert _phases({}) == ""
    assert (_phases({"supernet search": 66.04, "trials": 88.1, "reference": 15.2})
            == ": supernet search 66.0 s, trials 88.1 s, reference 15.2 s")
    assert _phases({"set-up": 0.2, "trials": 3.0, "reference": 1.5}) == ": trials 3.0 s, reference 1.5 s"
