"""BI outputs of the marts: Parquet/CSV per mart, a Power BI project (.pbip), a Tableau packaged
workbook (.twbx) and extract (.hyper), a Power BI .pbids, an HTML report.

```python
from extractor.config import Settings
from extractor.publish import publish

result = publish(Settings(data_dir="data"))          # every format
result = publish(settings, formats={"parquet", "html"})
```
"""

from .formats import FORMATS, parse_formats

__all__ = ["FORMATS", "PublishResult", "parse_formats", "publish"]


def __getattr__(name: str):
    # publish() loads DuckDB, plotly and the BI writers (30 MB of RSS): only when it is used,
    # so that a command that does not publish (an import) does not carry them
    if name in ("PublishResult", "publish"):
        from . import publisher

        return getattr(publisher, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
