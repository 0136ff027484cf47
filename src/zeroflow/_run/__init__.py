"""The run core: everything that exists only while a call drives a run.

``requests`` (what a run asks of its driver), ``lockstep`` (several node
generators as one batch), ``recorder`` (the only code that touches the store
and the event callbacks), ``tasks`` (one handler call with retries and
timeouts), ``nodes`` (each node kind), ``loop`` (the decisions: take, settle,
route, end) and ``resume`` (which waiting node a resume wakes; child runs).
"""
