"""BI outputs of the marts: Parquet/CSV per mart, a Power BI project (.pbip), a Tableau packaged
workbook (.twbx) and extract (.hyper), a Power BI .pbids, an HTML report.

```python
from extractor.config import Settings
from extractor.publish import publish

result = publish(Settings(data_dir="data"))          # every format
result = publish(settings, formats={"parquet", "html"})
```
"""

from .publisher import FORMATS, PublishResult, parse_formats, publish

__all__ = ["FORMATS", "PublishResult", "parse_formats", "publish"]
