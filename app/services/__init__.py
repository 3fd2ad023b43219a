"""What the routers call: plain functions and services over the store and the executor."""
