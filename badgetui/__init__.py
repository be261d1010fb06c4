"""badgetui: run Open edX digital badges on Credly and Accredible from the terminal."""

__version__ = "0.1.0"
