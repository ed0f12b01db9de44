"""``wedge demo``: a browser softphone, Wedge and a test PBX from one command.

- :mod:`gateway.demo.run`: the command: options, Wedge's configuration, the banner;
- :mod:`gateway.demo.certificate`: the self-signed HTTPS/WSS certificate, kept in the
  user's data directory;
- :mod:`gateway.demo.pbx`: the test PBX's pure core, which takes the inputs and
  hands each request to the part whose job it is:
  :mod:`~gateway.demo.registration` (REGISTER, Digest, is a browser still there;
  over :mod:`~gateway.demo.registrar` and :mod:`~gateway.demo.auth`),
  :mod:`~gateway.demo.services` (600, 601, 602; SDP by :mod:`~gateway.demo.offer`),
  :mod:`~gateway.demo.bridge` (the B2BUA between browsers) and
  :mod:`~gateway.demo.calls` (the calls under way: answering, keep-alive, ending
  their legs; dialogs by :mod:`~gateway.demo.dialog`). The parts act through one
  :mod:`~gateway.demo.wire` (SIP out, timers, media requests); the core's settings
  are :mod:`~gateway.demo.settings`, what it asks of the media players
  :mod:`~gateway.demo.media_requests`;
- :mod:`gateway.demo.players`: the media of 600 (echo), 601 (tone) and 602 (DTMF
  readback), over :mod:`~gateway.demo.rtp`, :mod:`~gateway.demo.tones` and
  :mod:`~gateway.demo.g711`;
- :mod:`gateway.demo.shell`: the asyncio shell of the PBX (its SIP and RTP sockets).

The web page itself is ``web-demo/`` at the top of the source tree.
"""
