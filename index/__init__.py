"""seislens.index"""
