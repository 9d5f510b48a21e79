"""The study framework: the catalogue finds studies by itself, seed sets are disjoint, overrides reach
every run, preconditions make a verdict inconclusive, and docs/claims.md is what the registry says."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from reslab.studies.base import RunOverrides
from reslab.studies.catalogue import all_studies, get_study, study_ids
from reslab.studies.claims_doc import claims_markdown
from reslab.studies.trained import Group, converged
from reslab.studies.verdict import Verdict
from reslab.train import Recipe, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_docs_claims_md_is_generated_from_the_studies_and_current():
    committed = (ROOT / "docs" / "claims.md").read_text()
    assert committed == claims_markdown(), "docs/claims.md is stale: reslab study --list --markdown > docs/claims.md"
    for study in all_studies():
        assert f"### {study.id} — " in committed and study.claim in committed


def test_the_catalogue_is_every_study_module_in_order():
    ids = study_ids()
    assert len(ids) == len(set(ids)) == 16
    assert [get_study(i).order for i in ids] == sorted(get_study(i).order for i in ids)
    assert ids[:2] == ["vanishing", "degradation"]
    assert {s.part for s in all_studies()} == {"essay", "beyond"}


def test_seed_sets_of_the_same_size_never_share_a_seed():
    study = get_study("degradation")
    first, second = study.seeds_for("quick", None, 0), study.seeds_for("quick", None, 1)
    assert first == [0, 1, 2] and second == [3, 4, 5]
    assert study.seeds_for("quick", 5, 2) == [10, 11, 12, 13, 14]
    shattered = get_study("shattered")
    assert not set(shattered.seeds_for("quick", None, 0)) & set(shattered.seeds_for("quick", None, 1))


def test_the_transformer_trains_every_seed_only_for_the_nets_its_precondition_tests():
    from reslab.studies import transformer as tf

    seeds = get_study("transformer").seeds_for("quick", None, 1)
    runs = tf.plan(tf.SETTINGS["quick"], seeds)
    per_net: dict[tuple, list[int]] = {}
    for c in runs:
        per_net.setdefault((c.model_options["variant"], c.recipe.warmup != "none"), []).append(c.seed)
    assert len(per_net) == 8 and set(tf.DECISIVE) < set(per_net)
    for net, got in per_net.items():  # other nets: the first seeds of the same set, so the sets stay disjoint
        assert got == (seeds if net in tf.DECISIVE else seeds[: tf.OTHER_SEEDS]), net


def test_a_study_plans_just_the_runs_of_another_study_that_it_analyses():
    def runs(study_id: str) -> list[str]:
        return [c.hash() for c in get_study(study_id).runs_for("smoke", [0])]

    degradation = set(runs("degradation"))
    assert len(degradation) == 4  # plain and ResNet at two depths
    assert len(runs("paths")) == 1 and set(runs("paths")) < degradation  # the deepest ResNet
    assert len(runs("lesion")) == 2 and set(runs("lesion")) < degradation  # and the shallowest plain net
    assert set(runs("landscape")) == degradation and degradation < set(runs("concat"))


def test_overrides_force_the_precision_and_data_folder_of_every_run():
    config = TrainConfig(model="mlp_plain", data="identity", recipe=Recipe(precision="auto"))
    forced = RunOverrides(data_dir="/data", precision="fp32").apply(config)
    assert forced.recipe.precision == "fp32" and forced.data_dir == "/data"
    assert forced.hash() != config.hash()  # a run in another precision is another run
    assert RunOverrides().apply(config) is config


@pytest.mark.parametrize(
    "pre, check, verdict",
    [(True, True, "holds"), (True, False, "fails"), (False, True, "inconclusive"), (False, False, "inconclusive"),
     (None, True, "inconclusive")],
)  # fmt: skip
def test_a_failed_precondition_makes_the_verdict_inconclusive(pre, check, verdict):
    v = Verdict()
    v.require("nets converged", pre)
    v.check("the claim", check)
    assert v.verdict == verdict
    assert v.evidence[0].endswith("precondition: nets converged")


def _group(finals: list[float], halves: list[float]) -> Group:
    """A group of runs that ended at ``finals`` (% training error) and ``halves`` with the half schedule."""
    runs = [
        SimpleNamespace(result={"train_error": f / 100, "half_schedule": {"train_error": h / 100}})
        for f, h in zip(finals, halves)
    ]
    return Group("net", runs)


@pytest.mark.parametrize(
    ("finals", "halves", "passed"),
    [
        ([0.0, 0.5, 1.0], [40.0, 0.2, 25.0], True),  # every seed below 2 points: less than that is left to gain
        ([50.0, 50.2, 49.9], [50.1, 50.3, 50.0], True),  # the longer schedule gained significantly less than 2
        ([1.0, 3.0, 0.5], [20.0, 3.1, 0.4], None),  # one seed above 2 and noisy gains: not shown converged
        ([30.0, 31.0, 29.0], [40.0, 41.0, 39.5], None),  # still training
        ([], [], None),  # no runs: nothing shown
    ],
)
def test_converged_by_the_longer_schedule_or_by_the_bound_at_zero(finals, halves, passed):
    v = Verdict()
    assert bool(converged(v, [_group(finals, halves)])) == bool(passed)
    assert v.checks[0].precondition and (v.verdict == "inconclusive") == (not passed)


def test_a_groups_text_says_how_many_of_its_runs_diverged():
    runs = [
        SimpleNamespace(result={"train_error": 0.1, "half_schedule": {"train_error": 0.1}}),
        SimpleNamespace(result={"status": "diverged", "train_error": None}),
    ]
    group = Group("net", runs)
    assert group.final() == [10.0, group.chance]
    assert group.text().endswith("% (1 of 2 diverged)") and group.diverged() == 1
    assert "diverged" not in _group([1.0, 2.0], [1.0, 2.0]).text()


def test_highway_trains_plain_nets_longer_and_judges_each_net_at_the_best_setting_of_its_search():
    from reslab.studies import highway as hw

    s = hw.SETTINGS["smoke"]
    shallow, deep = s.depths
    plan = hw.plan(s, [0])
    assert len({c.hash() for c in plan}) == len(s.depths) * sum(len(settings) for settings in hw.SEARCH.values())
    for c in plan:  # the plain nets (no shortcut) train longer: their further training could overturn check (1)
        plain = c.model_options["shortcut"] == "none"
        assert c.recipe.steps == s.recipe.steps * (hw.LONGER["plain"] if plain else 1)
    finals = {  # % training error per setting; the lower-rate plain net and the shared highway net tie at the top
        hw.label("plain", shallow): [5.0], hw.label("plain", shallow, {"lr": 0.01}): [1.0],
        hw.label("plain", deep): [90.0], hw.label("plain", deep, {"lr": 0.01}): [88.0],
        hw.label("highway", shallow): [2.0], hw.label("highway", shallow, {"gate_bias": -4.0}): [2.0],
        hw.label("highway", deep): [90.0], hw.label("highway", deep, {"gate_bias": -4.0}): [3.0],
        hw.label("residual", shallow): [0.0], hw.label("residual", deep): [0.0],
    }  # fmt: skip
    tried = {k: _group(v, v) for k, v in finals.items()}
    for k, g in tried.items():
        g.label = k
    chosen = {k: g.label for k, g in hw.best(tried, s).items()}
    assert chosen == {
        hw.label("plain", shallow): hw.label("plain", shallow, {"lr": 0.01}),
        hw.label("plain", deep): hw.label("plain", deep, {"lr": 0.01}),
        hw.label("highway", shallow): hw.label("highway", shallow),  # a tie: the shared recipe
        hw.label("highway", deep): hw.label("highway", deep, {"gate_bias": -4.0}),
        hw.label("residual", shallow): hw.label("residual", shallow),
        hw.label("residual", deep): hw.label("residual", deep),
    }
