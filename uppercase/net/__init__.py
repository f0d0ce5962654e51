"""
Network helpers: the transport fast path (the one place that reads Twisted's private fields), TCP_INFO, peer naming, the epoll reactor.
"""
