"""Builders of test data, imported by tests (``from tests.helpers.images import ...``);
the fixtures that wrap them are in tests/conftest.py.

paths: where the repository and the real dataset lie. images: synthetic images, masks and
datasets in the Kaggle layout. geotiff: GeoTIFFs with a CRS, and datasets of them.
geodata: a UTM scene and its class polygons. hostile: files whose headers lie. http_files:
a local HTTP server of a folder. models: tiny model files, trained or not, and stub
networks.
"""
