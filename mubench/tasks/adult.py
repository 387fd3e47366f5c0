"""Adult Income: predict whether a 1994 US census respondent earns more than 50K dollars a year.

UCI Adult (Becker & Kohavi 1996; Kohavi 1996) from its two published files, read strictly by
mubench/data/adult.py: `adult.data` is the training pool (validation is held out from it), and
`adult.test` is the test split, all 16,281 rows. Label 1 is income >50K (24.1 % of training rows).
FMD (Chen et al. 2023) debiases Adult models with respect to sex; so does this task: `sex` is the
primary sensitive attribute and counterfactuals flip the sex feature.

Features (91 per row), fitted on the rows of `adult.data` only, never on `adult.test`:
- five numeric columns, standardised with the training file's mean and standard deviation
  (population std; sklearn's StandardScaler): age, education-num, capital-gain, capital-loss,
  hours-per-week;
- one-hot columns, 0/1: sex (Female, Male) and race (the five values of adult.names, in the
  order of their codes below), then workclass, marital-status, occupation, relationship and
  native-country with vocabularies taken from the training file (sorted); a category that does
  not occur in the training file is encoded as all zeros (none does in the official files).
Dropped: `fnlwgt`, the census sampling weight (how many people a row stands for, not a trait of
the person; AIF360 drops it too), and `education`, which `education-num` encodes one to one
(checked on both files), so keeping both would duplicate one feature as 17 columns.

Missing values: `?` occurs only in workclass, occupation and native-country (2,399 training and
1,221 test rows). It is kept as a category of its own ("?"), so every published row is used;
AIF360's AdultDataset instead drops those rows (45,222 of 48,842 remain), which removes, e.g.,
most respondents without an occupation.

Attributes (integer codes in `Pool.attributes`, train and test): `sex` 0 = Female, 1 = Male;
`race` 0 = Amer-Indian-Eskimo, 1 = Asian-Pac-Islander, 2 = Black, 3 = Other, 4 = White.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mubench.data.adult import (
    OFFICIAL,
    RACE_VALUES,
    SEX_VALUES,
    AdultSource,
    load_adult,
)
from mubench.data.files import DataFile
from mubench.tasks.base import Pool, Task, TaskData, cached_task_data, tasks
from mubench.tasks.spec import DataFileSpec, ProfileSpec, Recipe, ScenarioSpec, TaskSpec

NUMERIC_FEATURES = ("age", "education-num", "capital-gain", "capital-loss", "hours-per-week")
PROTECTED_FEATURES = ("sex", "race")  # fixed vocabularies: one-hot order = attribute codes
CATEGORICAL_FEATURES = ("workclass", "marital-status", "occupation", "relationship", "native-country")
DROPPED = ("fnlwgt", "education")
SEX_COLUMNS = (len(NUMERIC_FEATURES), len(NUMERIC_FEATURES) + 1)  # the Female and Male one-hot columns
NUM_FEATURES = 91  # with the official files' training vocabularies
FEATURES_VERSION = "1"  # part of the prepared-data cache key: bump with the task versions when features change


def fit_encoder(train: pd.DataFrame) -> ColumnTransformer:
    """The feature map, fitted on the training table only (see the module docstring)."""
    encoder = ColumnTransformer(
        [("numeric", StandardScaler(), list(NUMERIC_FEATURES)),
         ("protected", OneHotEncoder(categories=[list(SEX_VALUES), list(RACE_VALUES)], sparse_output=False),
          list(PROTECTED_FEATURES)),
         ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORICAL_FEATURES))],
        sparse_threshold=0, verbose_feature_names_out=False)
    return encoder.fit(train)


def encode(encoder: ColumnTransformer, table: pd.DataFrame) -> np.ndarray:
    """Model-ready float32 features; categories unseen in training become all-zero one-hots."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
        return np.ascontiguousarray(encoder.transform(table), dtype=np.float32)


def attribute_codes(table: pd.DataFrame) -> dict[str, torch.Tensor]:
    """`sex` and `race` as integer codes, their positions in SEX_VALUES and RACE_VALUES."""
    return {name: torch.from_numpy(table[name].map({v: i for i, v in enumerate(values)}).to_numpy(np.int64, copy=True))
            for name, values in (("sex", SEX_VALUES), ("race", RACE_VALUES))}


def build_adult(train: pd.DataFrame, test: pd.DataFrame) -> TaskData:
    """Both pools from the parsed tables, with the feature map fitted on `train`."""
    encoder = fit_encoder(train)

    def pool(table: pd.DataFrame) -> Pool:
        return Pool(x=torch.from_numpy(encode(encoder, table)),
                    y=torch.from_numpy(table["income"].to_numpy(np.int64, copy=True)),
                    attributes=attribute_codes(table))

    return TaskData(train=pool(train), test=pool(test))


def flip_sex(x: torch.Tensor) -> torch.Tensor:
    """FMD's counterfactual on Adult (Chen et al. 2023): the same rows with the Female and Male
    one-hot columns swapped, every other feature unchanged (relationship's Husband/Wife too: this
    flips the feature, as FMD does, and is not a causal counterfactual)."""
    female, male = SEX_COLUMNS
    flipped = x.clone()
    flipped[:, [female, male]] = x[:, [male, female]]
    return flipped


def _scenarios() -> tuple[ScenarioSpec, ...]:
    return (
        ScenarioSpec(name="random_50", kind="random", params={"count": 50}, domain="privacy",
                     description="50 training individuals drawn uniformly at random (50 people's deletion requests)"),
        ScenarioSpec(name="random_1", kind="random", params={"fraction": 0.01}, domain="privacy",
                     description="1 % of the training rows, drawn uniformly at random"),
        ScenarioSpec(name="female_over_50k", kind="subgroup", domain="fairness",
                     params={"attribute": "sex", "value": 0, "labels": [1]},
                     description="every training woman with income >50K (sex 0, label 1; 1,179 rows of adult.data): "
                                 "the scarce cell whose removal widens the model's sex gap"),
    )


NOTES = (
    ("Train pool: all 32,561 rows of adult.data (validation is held out from it); test split: all 16,281 rows of "
     "adult.test, whose first line '|1x3 Cross validator' is skipped and whose labels' full stops are removed."),
    ("Missing values ('?', only in workclass, occupation and native-country; 2,399 training and 1,221 test rows) are "
     "kept as a category of their own, so no row is dropped (AIF360 drops them, keeping 45,222 of 48,842 rows)."),
    ("Features (91): age, education-num, capital-gain, capital-loss and hours-per-week standardised with the mean and "
     "population std of adult.data; one-hot sex, race, workclass, marital-status, occupation, relationship and "
     "native-country; a category absent from adult.data is encoded as all zeros."),
    ("fnlwgt (the census sampling weight, not a trait of the person) and education (encoded one to one by "
     "education-num) are dropped."),
    ("Preprocessing is fitted once on all of adult.data, never on adult.test; it is part of the task's data, so "
     "the forget set's rows take part in the standardisation statistics and vocabularies that the oracle shares."),
    ("Attribute codes: sex 0 = Female, 1 = Male; race 0 = Amer-Indian-Eskimo, 1 = Asian-Pac-Islander, 2 = Black, "
     "3 = Other, 4 = White. Label 1 is income >50K (24.1 % of adult.data, 23.6 % of adult.test)."),
    ("Counterfactuals (fair/counterfactual_bias) swap the Female and Male one-hot features and change nothing "
     "else, as FMD flips the sex feature (Chen et al. 2023); relationship (Husband/Wife) still reveals sex."),
)

_SMOKE_MLP = ProfileSpec(model="mlp", model_args={"hidden": [64, 64]},
                         recipe=Recipe(optimizer="adam", lr=1e-3, epochs=5, batch_size=256),
                         train_size=None, val_size=2_000, test_size=None)
# FMD's code (richhh520/model-debias, mlp2.py, class MLP) has three hidden layers of 100 on a
# one-hot Adult input; its Adult training recipe is not published, so ours is a plain Adam one.
_STANDARD_MLP = ProfileSpec(model="mlp", model_args={"hidden": [100, 100, 100]},
                            recipe=Recipe(optimizer="adam", lr=1e-3, epochs=20, batch_size=256, weight_decay=1e-5),
                            train_size=None, val_size=2_000, test_size=None)
# Logistic regression: Adam on standardised features reaches the neighbourhood of the convex
# optimum in a few epochs (tests/test_task_adult.py compares it with scikit-learn's solver).
_LOGISTIC = {
    "smoke": ProfileSpec(model="logistic", recipe=Recipe(optimizer="adam", lr=1e-2, epochs=5, batch_size=256),
                         train_size=None, val_size=2_000, test_size=None),
    "standard": ProfileSpec(model="logistic", recipe=Recipe(optimizer="adam", lr=1e-2, epochs=30, batch_size=256,
                                                            schedule="cosine"),
                            train_size=None, val_size=2_000, test_size=None),
}


def make_spec(name: str, title: str, profiles: dict[str, ProfileSpec], source: AdultSource = OFFICIAL) -> TaskSpec:
    return TaskSpec(
        name=name,
        version="1.1",
        title=title,
        modality="tabular",
        description=__doc__.split("\n\n")[0].strip(),
        num_classes=2,
        input_shape=(NUM_FEATURES,),
        source=tuple(DataFileSpec(name=f.form.name, sha256=f.form.sha256) for f in (source.train, source.test)),
        source_folder=source.folder,
        profiles=profiles,
        scenarios=_scenarios(),
        sensitive_attributes=("sex", "race"),
        main_metric="test/acc",
        notes=NOTES,
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Becker & Kohavi 1996, Adult, UCI Machine Learning Repository, doi:10.24432/C5XW20; Kohavi 1996, "
                 "KDD (NBTree); Chen et al. 2023, FMD (NeurIPS)",
    )


SPEC = make_spec("adult", "Adult Income", {"smoke": _SMOKE_MLP, "standard": _STANDARD_MLP})
LOGREG_SPEC = make_spec("adult_logreg", "Adult Income (logistic regression)", _LOGISTIC)


class Adult(Task):
    """The Adult task under one spec; `adult` and `adult_logreg` share the prepared data."""

    def __init__(self, spec: TaskSpec, source: AdultSource = OFFICIAL) -> None:
        self.spec = spec
        self.source = source

    def data_files(self) -> list[DataFile]:
        return self.source.data_files()

    def load(self) -> TaskData:
        key = ["adult", FEATURES_VERSION, self.source.folder, self.source.pinned]
        data = cached_task_data("adult", key, lambda: build_adult(*load_adult(self.source)))
        if tuple(data.train.x.shape[1:]) != self.spec.input_shape:
            raise ValueError(f"task {self.spec.name}: the data has {data.train.x.shape[1]} features, the spec says "
                             f"{self.spec.input_shape}; the feature map changed without updating the spec")
        return data

    def counterfactual(self, x: torch.Tensor, attributes: dict[str, torch.Tensor],
                       generator: torch.Generator) -> torch.Tensor:
        """The same rows with the other sex (see `flip_sex`); sex is binary, so nothing is drawn."""
        return flip_sex(x)


tasks.add("adult", Adult(SPEC))
tasks.add("adult_logreg", Adult(LOGREG_SPEC))
