"""The data plane: the L4 Service proxy and the L7 Ingress router (:mod:`.ingress`)."""
