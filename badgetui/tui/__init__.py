"""The full-screen console (Textual). Presentation only: it calls services, never Peewee or httpx.

Every service call runs in a worker (thread workers for database work; provider calls run their
own event loop inside the thread) and comes back as a message, so the screen never blocks.
"""
