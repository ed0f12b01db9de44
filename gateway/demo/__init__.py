"""``wedge demo``: a browser softphone, Wedge and a test PBX from one command.

- :mod:`gateway.demo.run`: the command: options, Wedge's configuration, the banner;
- :mod:`gateway.demo.certificate`: the self-signed HTTPS/WSS certificate, kept in the
  user's data directory;
- :mod:`gateway.demo.pbx`: the test PBX's pure core (registrar glue, service calls,
  the B2BUA between browsers), with :mod:`~gateway.demo.registrar`,
  :mod:`~gateway.demo.auth` (Digest), :mod:`~gateway.demo.dialog` and
  :mod:`~gateway.demo.offer` (SDP for the services);
- :mod:`gateway.demo.players`: the media of 600 (echo), 601 (tone) and 602 (DTMF
  readback), over :mod:`~gateway.demo.rtp`, :mod:`~gateway.demo.tones` and
  :mod:`~gateway.demo.g711`;
- :mod:`gateway.demo.shell`: the asyncio shell of the PBX (its SIP and RTP sockets).

The web page itself is ``web-demo/`` at the top of the source tree.
"""
