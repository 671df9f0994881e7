"""The reconcile machinery every API client of procorch runs on: controllers, the scheduler,
the node agent and both proxies.

* :mod:`.informer`: :class:`~.informer.Informer`, the list+watch cache of one resource;
* :mod:`.factory`: :class:`~.factory.InformerFactory`, the one informer per resource a
  process holds (its scope says with which selectors), started on first use;
* :mod:`.views`: :class:`~.views.InformerView`, how a component reads one of them: with its
  own selectors, handlers and indexes, as if it had an informer of its own;
* :mod:`.workqueue`: the de-duplicating, rate-limited work queue;
* :mod:`.controller`: the :class:`~.controller.Controller` base (workers, reconcile results,
  :class:`~.controller.PermanentError`).

It imports ``procorch.api``, ``procorch.kit`` and ``procorch.client`` only, so a component on
another machine runs the same code over the HTTP client.
"""
