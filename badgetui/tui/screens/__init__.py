"""The panes (tabs) and screens of the console."""
