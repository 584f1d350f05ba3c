"""autoice: automated sea ice charts from Sentinel-1, AMSR2 and ERA5 (AI4Arctic / AutoICE)."""

__version__ = "0.1.0"
