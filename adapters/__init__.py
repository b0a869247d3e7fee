"""Partner-format adapters: Python for what a mapping's JMESPath cannot say.

A mapping file (`mappings/<name>.json`) that says `"adapter": "<module>"` gets `adapters/<module>.py`
loaded from its file by `chalicelib.mapping` (see its docstring). A module may define

    before_inbound(event_type: str, native: dict) -> dict    # runs before the inbound expression
    after_outbound(event_type: str, native: dict) -> dict    # runs after the outbound expression

Each gets a deep copy it may change. To refuse data with a reason, raise
`chalicelib.mapping.MappingDataError("<reason without any data value>")`; any other exception is
reported as a 422 `mapping_failed` naming only its class.

The formats shipped so far (`tax_gt3`, `bank_govpay`) need no adapter: JMESPath and the hub's generic
functions say all of them.
"""
