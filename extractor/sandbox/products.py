"""The sandbox's product table: the names and codes of dbt_project/seeds/product_catalog.csv.

Kept here (not read from the dbt seed) so the sandbox runs from an installed wheel; a test
checks that every product and collection below exists in the seed with the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Product:
    name: str
    code: str
    tokens_per_day: float
    collections: tuple[str, ...] = ()  # collection codes that include it
    cloud: bool = False  # cloud products are not versioned


@dataclass(frozen=True)
class Collection:
    name: str
    code: str


COLLECTIONS: tuple[Collection, ...] = (
    Collection("AEC Collection", "AECCOL"),
    Collection("PDM Collection", "PDCOLL"),
    Collection("M&E Collection", "MECOLL"),
)

_AEC, _PDM, _ME = "AECCOL", "PDCOLL", "MECOLL"

PRODUCTS: tuple[Product, ...] = (
    Product("AutoCAD", "ACD", 7, (_AEC, _PDM)),
    Product("Revit", "RVT", 10, (_AEC,)),
    Product("Civil 3D", "CIV3D", 10, (_AEC,)),
    Product("Navisworks Manage", "NAVMAN", 7, (_AEC, _PDM)),
    Product("InfraWorks", "INFWP", 7, (_AEC,)),
    Product("ReCap Pro", "RECAP", 3, (_AEC, _PDM)),
    Product("Advance Steel", "ADSTPR", 7, (_AEC,)),
    Product("Robot Structural Analysis Professional", "RSAPRO", 7, (_AEC,)),
    Product("AutoCAD Architecture", "ARCHDESK", 7, (_AEC,)),
    Product("AutoCAD MEP", "BLDSYS", 7, (_AEC,)),
    Product("FormIt Pro", "FORMIT", 3, (_AEC,)),
    Product("Inventor Professional", "INVPROSA", 10, (_PDM,)),
    Product("AutoCAD Mechanical", "AMECH_PP", 7, (_PDM,)),
    Product("AutoCAD Electrical", "ACAD_E", 7, (_PDM,)),
    Product("Vault Professional", "VLTM", 3, (_PDM,)),
    Product("Nastran In-CAD", "NINCAD", 7, (_PDM,)),
    Product("Factory Design Utilities", "FDU", 7, (_PDM,)),
    Product("Inventor CAM", "HSMPRO", 10, (_PDM,)),
    Product("3ds Max", "3DSMAX", 10, (_AEC, _ME)),
    Product("Maya", "MAYA", 10, (_ME,)),
    Product("MotionBuilder", "MOBPRO", 7, (_ME,)),
    Product("Mudbox", "MUDBOX", 1, (_ME,)),
    Product("Arnold", "ARNOL", 3, (_ME,)),
    Product("AutoCAD LT", "ACDLT", 3),
    Product("Revit LT", "RVTLTS", 3),
    Product("Fusion", "F360", 5, cloud=True),
    Product("Vault Office", "VLTO", 3),
    Product("Moldflow Adviser Ultimate", "MFAA", 11),
    Product("Alias AutoStudio", "ALAUST", 18),
    Product("VRED Professional", "VRDPRO", 16),
    Product("Plant 3D", "PLNT3D", 7),
    Product("ReMake", "RMKPRO", 3),
)

PRODUCT_BY_CODE = {p.code: p for p in PRODUCTS}
COLLECTION_BY_CODE = {c.code: c for c in COLLECTIONS}


def collection_members(code: str) -> list[Product]:
    return [p for p in PRODUCTS if code in p.collections]
