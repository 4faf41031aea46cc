"""divert: charge an electric car from rooftop-solar surplus."""

__version__ = "0.1.0"
