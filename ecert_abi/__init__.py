"""ecert-abi: eCERT 2.0 quota-certificate processing over CBP's Automated Broker Interface.

Declarative 80-column record layouts (parse, emit, validate), the batch envelope, and the
validation-and-decrement engine over a certificate ledger.
"""

from .conditions import CONDITIONS, Code, Condition
from .envelope import Batch, Block, Fault, frame, reject_reply, reply_envelope
from .layout import Chapter, Defect, EmitError, Field, Layout, LayoutError
from .record import Catalogue, Record, catalogue, read_lines

__all__ = [
    "CONDITIONS",
    "Batch",
    "Block",
    "Catalogue",
    "Chapter",
    "Code",
    "Condition",
    "Defect",
    "EmitError",
    "Fault",
    "Field",
    "Layout",
    "LayoutError",
    "Record",
    "catalogue",
    "frame",
    "read_lines",
    "reject_reply",
    "reply_envelope",
]
