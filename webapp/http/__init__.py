"""HTTP: the route table, one handler module per protocol, dispatch, responses, observation."""
