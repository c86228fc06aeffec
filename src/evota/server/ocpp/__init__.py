"""The CSMS: evota's OCPP endpoint for chargers, at `/ocpp/<charge_point_id>` on the server's port.

endpoint.py   the websocket route: subprotocol, basic auth, one session per connection
connection.py Starlette's websocket as the connection the `ocpp` package reads and writes
rpc.py        what both versions share: CallErrors for bad or early messages, typed calls
v16.py        OCPP 1.6J (with the security extension) handlers
v201.py       OCPP 2.0.1 handlers
hub.py        the sessions this process holds, by charge point id
errors.py     the charger error tree
"""
