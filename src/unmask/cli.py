def main(argv=None):
    print("unmask")
