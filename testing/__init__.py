"""Test helpers for fulfil and its plugin authors: loopback fake services (and, later, the
conformance suite). Nothing here touches the internet."""
