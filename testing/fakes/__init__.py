"""Fake carrier and provider APIs on loopback, answering as their public documentation says.

Each keeps a record of what it was asked and what it sold, so a test can prove "bought
once" from the service's side rather than from fulfil's own bookkeeping.
"""
