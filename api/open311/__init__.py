"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2): wangge's events as service requests.

`formats` renders the spec's JSON and XML documents (and its error format), `params` reads the
spec's parameters, `service` answers each method by calling the event loop (api/events.py).
"""
