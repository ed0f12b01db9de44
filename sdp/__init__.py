"""SDP model, offer/answer rules and per-leg rewrite profiles. Pure: imports nothing of Wedge."""
