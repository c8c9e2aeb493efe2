"""seislens.training"""
