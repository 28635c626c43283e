"""aps-usage: extract Autodesk Premium Reporting and Token Flex usage into a Parquet dataset."""

__version__ = "0.1.0"

AUTODESK_BASE_URL = "https://developer.api.autodesk.com"
