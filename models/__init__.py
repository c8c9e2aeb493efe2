"""seislens.models"""
