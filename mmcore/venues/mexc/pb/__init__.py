"""MEXC spot v3 WebSocket protobuf classes, generated at build time from the vendored schemas.

The ``*_pb2.py`` modules here are written by ``setup.py`` (``generate_mexc_pb``) from
``vendor/mexc-websocket-proto/*.proto`` (MEXC's published schemas, https://github.com/mexcdevelop/websocket-proto,
Apache-2.0) with the protoc of the pinned ``grpcio-tools`` build requirement; they are not committed. Their
descriptors live in a private pool (:data:`mmcore.venues.mexc.pb._pool.POOL`).

Only the three aggregated public channels are re-exported; the other bodies stay importable from their modules.
Raises ImportError (with the command to run) when the modules were not generated.
"""
try:
    from .PushDataV3ApiWrapper_pb2 import PushDataV3ApiWrapper
    from .PublicAggreDepthsV3Api_pb2 import PublicAggreDepthsV3Api, PublicAggreDepthV3ApiItem
    from .PublicAggreDealsV3Api_pb2 import PublicAggreDealsV3Api, PublicAggreDealsV3ApiItem
    from .PublicAggreBookTickerV3Api_pb2 import PublicAggreBookTickerV3Api
except ModuleNotFoundError as exc:                      # pragma: no cover - a build step was skipped
    if not (exc.name or "").endswith("_pb2"):
        raise
    raise ImportError("the MEXC protobuf modules are generated at build time: run `pip install -e .` "
                      "(or `python setup.py build_ext --inplace` with grpcio-tools installed)") from exc

__all__ = ["PushDataV3ApiWrapper", "PublicAggreDepthsV3Api", "PublicAggreDepthV3ApiItem", "PublicAggreDealsV3Api",
           "PublicAggreDealsV3ApiItem", "PublicAggreBookTickerV3Api"]
