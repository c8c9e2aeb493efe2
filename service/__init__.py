"""seislens.service"""
