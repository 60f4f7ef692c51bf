import ArgumentParser

LlavaForge.main()
