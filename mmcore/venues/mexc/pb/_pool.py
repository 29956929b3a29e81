"""The descriptor pool of the generated MEXC modules (private: see ``setup.py``'s ``_fix_imports``)."""
from google.protobuf import descriptor_pool

#: Holds MEXC's schemas (file names as in ``vendor/mexc-websocket-proto``); protobuf's default pool is not used.
POOL = descriptor_pool.DescriptorPool()
