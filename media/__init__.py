"""Media relay: the MediaControl protocol, the built-in relay and the rtpengine client."""
