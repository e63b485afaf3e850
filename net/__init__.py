"""The network, without Blender: the HTTP client every cloud provider shares, the local server
DRESSX reaches through a tunnel, and what a request can end in (errors, cancel, redaction)."""
