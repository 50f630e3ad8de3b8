# notary-signer from this workspace's binary (see scripts/build-images.sh): no base image.
FROM scratch
ADD notary-signer.rootfs.tar /
USER 65534:65534
WORKDIR /data
EXPOSE 7899
ENTRYPOINT ["/usr/local/bin/notary-signer"]
CMD ["--config", "/config/signer.json"]
